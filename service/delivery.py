"""Outbox workers: every journaled finding and withdrawal reaches every configured sink.

One asyncio task per sink takes that sink's due items from the journal's outbox,
delivers them in order and records the outcome, so a sink that is down or slow
holds back only itself: ingestion never waits for delivery, and the other sinks
keep going. Delivery is at-least-once (an item is marked delivered only after
its transport said so, so a crash in between sends it again); receivers
de-duplicate on the item's id (``finding_id`` / ``withdrawal_id``).

A retryable failure puts that sink on hold until the item's next attempt:
full-jitter exponential back-off, ``uniform(0, min(max, base * 2**attempts))``,
or longer when the sink asked (``Retry-After``). The sink's later items wait
behind it, because an alarm manager must see an alarm's start before its end.
A refusal (4xx, ACK ``AR``, a record the format cannot carry) dead-letters the
item: counted, kept in the journal with its error, and the next item goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, Protocol, TypeVar, runtime_checkable

from pumpguard.adapters.transports import (
    BatchTransport,
    Deliverable,
    DeliveryError,
    Transport,
)
from pumpguard.service.sink_config import (
    JsonlSinkConfig,
    MllpConnect,
    MllpSinkConfig,
    SinkConfig,
    SinkConfigError,
    StructlogSinkConfig,
    TlsConfig,
    WebhookSinkConfig,
    build_transports,
    parse_sink_configs,
)

__all__ = [
    "DEAD_LETTER_AT",
    "DeadLetters",
    "Deliverer",
    "JsonlSinkConfig",
    "MllpConnect",
    "MllpSinkConfig",
    "NowClock",
    "Outbox",
    "OutboxEntry",
    "Outcome",
    "SinkConfig",
    "SinkConfigError",
    "SinkStats",
    "StructlogSinkConfig",
    "TlsConfig",
    "WebhookSinkConfig",
    "backoff_delay",
    "build_transports",
    "parse_sink_configs",
]

T = TypeVar("T")
Outcome = Literal["delivered", "retry", "dead"]

DEAD_LETTER_AT = math.inf
"""``next_at`` of a dead-lettered item when the outbox has no ``mark_dead``: never due again."""


class OutboxEntry(Protocol):
    """What the workers read of one outbox row (``service.journal.OutboxItem`` fits)."""

    @property
    def item_id(self) -> int: ...
    @property
    def output_id(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def attempts(self) -> int: ...


class Outbox(Protocol):
    """The journal's outbox methods the workers use (blocking; called off the event loop)."""

    def outbox_due(self, sink: str, now: float, limit: int = 100) -> Sequence[OutboxEntry]: ...
    def mark_delivered(self, sink: str, item_ids: Sequence[int], at: float) -> None: ...
    def mark_retry(self, sink: str, item_id: int, next_at: float, error: str) -> None: ...


@runtime_checkable
class DeadLetters(Protocol):
    """An outbox that keeps dead letters apart from the pending backlog."""

    def mark_dead(self, sink: str, item_id: int, at: float, error: str) -> None: ...


class NowClock(Protocol):
    """The service clock: epoch seconds (``engine.clock.LiveClock`` fits)."""

    def now(self) -> float: ...


@dataclass(frozen=True)
class SinkStats:
    """One sink's delivery record, for ``/metrics`` and ``/healthz``."""

    delivered: int = 0
    retries: int = 0
    dead: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_delivered_at: float | None = None
    held_until: float | None = None
    """Set while the sink is backing off after a retryable failure."""


def backoff_delay(attempts: int, rng: random.Random, base_s: float, max_s: float) -> float:
    """Full-jitter exponential back-off for an item that has failed ``attempts`` times before."""
    ceiling = min(max_s, base_s * 2.0 ** min(attempts, 64))
    return rng.uniform(0.0, ceiling)


class Deliverer:
    """The outbox workers of every sink, with their stats.

    ``journal`` calls run in one worker thread of the deliverer's own, so a journal
    write (an fsync) never stalls the event loop. ``wake()`` may be called from any
    thread (the journal's commit thread, the engine thread).
    """

    def __init__(
        self,
        journal: Outbox,
        sinks: Mapping[str, Transport],
        clock: NowClock,
        *,
        rng: random.Random,
        base_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
        batch: int = 100,
        poll_s: float = 5.0,
        delivery_timeout_s: float = 30.0,
        linger_s: float = 0.0,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        if base_delay_s <= 0 or max_delay_s < base_delay_s:
            msg = f"back-off needs 0 < base ({base_delay_s}) <= max ({max_delay_s})"
            raise ValueError(msg)
        if batch < 1 or poll_s <= 0 or delivery_timeout_s <= 0 or linger_s < 0:
            raise ValueError(
                "batch, poll_s and delivery_timeout_s must be positive, linger_s not negative"
            )
        self._journal = journal
        self._sinks = dict(sinks)
        self._clock = clock
        self._rng = rng
        self._base = base_delay_s
        self._max = max_delay_s
        self._batch = batch
        self._poll = poll_s
        self._timeout = delivery_timeout_s
        self._linger = linger_s
        self._on_outcome = on_outcome
        self._stats = {name: SinkStats() for name in self._sinks}
        self._wakes: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self._hold: dict[str, float] = {}
        self._stopped = asyncio.Event()

    @property
    def sinks(self) -> list[str]:
        return list(self._sinks)

    def stats(self) -> dict[str, SinkStats]:
        """A copy of every sink's stats (frozen records: safe to hand to another thread)."""
        return dict(self._stats)

    async def start(self) -> None:
        """Start one worker task per sink on the running loop."""
        if self._tasks:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pumpguard-outbox")
        for name in self._sinks:
            self._wakes[name] = asyncio.Event()
            self._tasks[name] = asyncio.create_task(self._run(name), name=f"outbox-{name}")

    def wake(self) -> None:
        """New outputs were recorded: look at the outboxes now (a held sink stays held)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._set_wakes()
        else:
            loop.call_soon_threadsafe(self._set_wakes)

    def _set_wakes(self) -> None:
        for event in self._wakes.values():
            event.set()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Let in-flight deliveries finish (at most ``timeout_s``), then stop and close."""
        self._stopping = True
        self._stopped.set()
        self._set_wakes()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for transport in self._sinks.values():
            await transport.aclose()
        executor, self._executor = self._executor, None
        if executor is not None:
            # A journal call a cancelled worker left running finishes before the journal closes.
            await asyncio.to_thread(executor.shutdown, True)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _run(self, sink: str) -> None:
        """The worker of one sink: due items in order, then sleep until due or woken."""
        wake = self._wakes[sink]
        loop = asyncio.get_running_loop()
        while not self._stopping:
            wait = self._hold.get(sink, 0.0) - loop.time()
            if wait > 0:
                # Back-off is not cut short by new work; only stop() ends it.
                await self._sleep(self._stopped, wait)
                continue
            now = self._clock.now()
            if not math.isfinite(now):  # an event-following clock before its first event
                await self._sleep(wake, self._poll)
                continue
            wake.clear()
            try:
                items = await self._call(self._journal.outbox_due, sink, now, self._batch)
                if items:
                    await self._deliver_batch(sink, items)
                    if len(items) < self._batch and self._linger > 0:
                        # Under load, let the next findings gather: one write, one fsync and
                        # one outbox update for a burst instead of one each.
                        await self._sleep(self._stopped, self._linger)
                    continue
            except Exception as exc:  # the journal failing must not end this sink's worker
                self._failed(sink, f"outbox failed: {exc.__class__.__name__}: {exc}", now)
            await self._sleep(wake, self._poll)

    async def _sleep(self, until: asyncio.Event, seconds: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await until.wait()

    async def _deliver_batch(self, sink: str, items: Sequence[OutboxEntry]) -> None:
        transport = self._sinks[sink]
        if (
            len(items) > 1
            and isinstance(transport, BatchTransport)
            and await self._deliver_together(sink, transport, items)
        ):
            return
        delivered: list[int] = []
        try:
            for entry in items:
                if self._stopping:
                    break
                outcome = await self._deliver_one(sink, entry, delivered)
                if outcome == "retry":
                    break  # the sink is on hold: its later items wait behind this one
        finally:
            if delivered:
                await self._mark_delivered(sink, delivered)

    async def _deliver_together(
        self, sink: str, transport: BatchTransport, items: Sequence[OutboxEntry]
    ) -> bool:
        """The whole batch in one call; False (nothing recorded) sends the caller item by
        item, where each failure gets its own retry or dead letter."""
        try:
            records = [Deliverable.from_json(entry.body) for entry in items]
            async with asyncio.timeout(self._timeout):
                await transport.deliver_batch(records)
        except Exception:
            return False
        for _ in items:
            self._record(sink, "delivered")
        await self._mark_delivered(sink, [entry.item_id for entry in items])
        return True

    async def _deliver_one(self, sink: str, entry: OutboxEntry, delivered: list[int]) -> Outcome:
        try:
            item = Deliverable.from_json(entry.body)
            async with asyncio.timeout(self._timeout):
                await self._sinks[sink].deliver(item)
        except TimeoutError:
            error: DeliveryError = DeliveryError(
                f"no answer within {self._timeout:g} s", retryable=True
            )
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a transport bug: keep the item, say why, back off
            error = DeliveryError(f"unexpected {exc.__class__.__name__}: {exc}", retryable=True)
        else:
            delivered.append(entry.item_id)
            self._record(sink, "delivered")
            return "delivered"
        if delivered:  # keep the outbox in order: what went before is done
            await self._mark_delivered(sink, delivered)
            delivered.clear()
        if error.retryable:
            await self._retry(sink, entry, error)
            return "retry"
        await self._dead(sink, entry, error)
        return "dead"

    async def _mark_delivered(self, sink: str, ids: list[int]) -> None:
        now = self._clock.now()
        await self._call(self._journal.mark_delivered, sink, list(ids), now)
        st = self._stats[sink]
        self._stats[sink] = replace(st, last_delivered_at=now, held_until=None)
        self._hold.pop(sink, None)

    async def _retry(self, sink: str, entry: OutboxEntry, error: DeliveryError) -> None:
        now = self._clock.now()
        delay = backoff_delay(entry.attempts, self._rng, self._base, self._max)
        if error.retry_after_s is not None:
            delay = max(delay, min(error.retry_after_s, self._max))
        next_at = now + delay
        await self._call(self._journal.mark_retry, sink, entry.item_id, next_at, error.message)
        st = self._failed(sink, error.message, now)
        self._stats[sink] = replace(st, retries=st.retries + 1, held_until=next_at)
        # The hold runs on the loop's clock: back-off is real time even when the service
        # clock follows event time (and would not move while a backfill pauses).
        self._hold[sink] = asyncio.get_running_loop().time() + delay
        self._record(sink, "retry")

    async def _dead(self, sink: str, entry: OutboxEntry, error: DeliveryError) -> None:
        now = self._clock.now()
        text = f"dead letter: {error.message}"
        if isinstance(self._journal, DeadLetters):
            await self._call(self._journal.mark_dead, sink, entry.item_id, now, text)
        else:
            await self._call(self._journal.mark_retry, sink, entry.item_id, DEAD_LETTER_AT, text)
        st = self._failed(sink, text, now)
        self._stats[sink] = replace(st, dead=st.dead + 1)
        self._record(sink, "dead")

    def _failed(self, sink: str, error: str, now: float) -> SinkStats:
        st = replace(self._stats[sink], last_error=error, last_error_at=now)
        self._stats[sink] = st
        return st

    def _record(self, sink: str, outcome: Outcome) -> None:
        if outcome == "delivered":
            st = self._stats[sink]
            self._stats[sink] = replace(st, delivered=st.delivered + 1)
        if self._on_outcome is not None:
            self._on_outcome(sink, outcome)
