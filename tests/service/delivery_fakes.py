"""Shared fakes for the delivery tests: records, an in-memory outbox, a loop clock, sinks.

The outbox has the journal's outbox methods and semantics (``attempts`` counts
every attempt recorded, items come in enqueue order, only due ones), kept in
memory so the tests can look at every call.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pumpguard.adapters.transports import Deliverable, SinkRejected, SinkUnavailable
from pumpguard.engine.findings import (
    Finding,
    RulePackRef,
    Severity,
    Withdrawal,
    make_finding_id,
    make_withdrawal_id,
    rfc3339,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PACK = RulePackRef(name="blincyto", version="0.1.0", sha256="0" * 64, edition="seed")


def make_finding(n: int, *, patient_id: str = "P-1", severity: Severity = Severity.HIGH) -> Finding:
    ts = T0 + timedelta(minutes=n)
    evidence = [f"e-{n}"]
    return Finding(
        finding_id=make_finding_id("BLN-BAG-01", patient_id, evidence, rfc3339(ts)),
        code="BAG_OVERDUE",
        rule_id="BLN-BAG-01",
        severity=severity,
        patient_id=patient_id,
        ts=ts,
        message=f"Bag B{n} is still infusing 2 h after its labelled duration.",
        action="Change the bag now.",
        evidence=evidence,
        citation="R-BAG-DUR",
        rule_pack=PACK,
        requirement="R-BAG-DUR",
    )


def make_withdrawal(finding: Finding, reason: str = "A late bag change at 09:58.") -> Withdrawal:
    ts = finding.ts + timedelta(hours=1)
    evidence = ["late-1"]
    return Withdrawal(
        withdraws=finding.finding_id,
        ts=ts,
        reason=reason,
        evidence=evidence,
        rule_pack=finding.rule_pack,
        withdrawal_id=make_withdrawal_id(finding.finding_id, rfc3339(ts), evidence),
        patient_id=finding.patient_id,
        code=finding.code,
        rule_id=finding.rule_id,
        severity=finding.severity,
    )


@dataclass(frozen=True)
class Item:
    """An outbox row, shaped like ``service.journal.OutboxItem``."""

    item_id: int
    sink: str
    kind: str
    output_id: str
    body: str
    attempts: int = 0
    next_at: float = 0.0
    delivered_at: float | None = None
    dead: bool = False
    last_error: str | None = None


@dataclass
class FakeOutbox:
    """The journal's outbox in memory (thread-safe: the deliverer calls it from a thread)."""

    items: dict[int, Item] = field(default_factory=dict)
    retries: list[tuple[int, float, str]] = field(default_factory=list)
    fail_next_due: int = 0
    fail_next_mark_delivered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enqueue(self, sink: str, record: Finding | Withdrawal, *, at: float = 0.0) -> int:
        d = Deliverable.of(record)
        return self.enqueue_body(sink, d.kind, d.id, d.json, at=at)

    def enqueue_body(
        self, sink: str, kind: str, output_id: str, body: str, *, at: float = 0.0
    ) -> int:
        with self._lock:
            item_id = len(self.items) + 1
            self.items[item_id] = Item(item_id, sink, kind, output_id, body, next_at=at)
            return item_id

    def outbox_due(self, sink: str, now: float, limit: int = 100) -> list[Item]:
        with self._lock:
            if self.fail_next_due:
                self.fail_next_due -= 1
                raise OSError("database is locked")
            due = [
                i
                for i in self.items.values()
                if i.sink == sink and i.delivered_at is None and not i.dead and i.next_at <= now
            ]
            return sorted(due, key=lambda i: i.item_id)[:limit]

    def mark_delivered(self, sink: str, item_ids: Sequence[int], at: float) -> None:
        with self._lock:
            if self.fail_next_mark_delivered:
                self.fail_next_mark_delivered -= 1
                raise OSError("disk I/O error")
            for item_id in item_ids:
                it = self.items[item_id]
                assert it.sink == sink
                if it.delivered_at is None:
                    self.items[item_id] = replace(it, delivered_at=at, attempts=it.attempts + 1)

    def mark_retry(self, sink: str, item_id: int, next_at: float, error: str) -> None:
        with self._lock:
            it = self.items[item_id]
            assert it.sink == sink
            self.items[item_id] = replace(
                it, next_at=next_at, last_error=error, attempts=it.attempts + 1
            )
            self.retries.append((item_id, next_at, error))

    def pending(self, sink: str) -> list[Item]:
        with self._lock:
            return [
                i
                for i in self.items.values()
                if i.sink == sink and i.delivered_at is None and not i.dead
            ]


@dataclass
class DeadLetterOutbox(FakeOutbox):
    """A FakeOutbox that also keeps dead letters apart (``mark_dead``)."""

    def mark_dead(self, sink: str, item_id: int, at: float, error: str) -> None:
        with self._lock:
            it = self.items[item_id]
            self.items[item_id] = replace(it, dead=True, last_error=error, attempts=it.attempts + 1)


class LoopClock:
    """Epoch-like seconds that follow the event loop's (looptime's fake) time."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.start = start

    def now(self) -> float:
        return self.start + asyncio.get_running_loop().time()


@dataclass
class ScriptedSink:
    """A transport that records every attempt and fails as its script says.

    ``fail``: per id, how many attempts fail (retryable) before one succeeds.
    ``refuse``: ids refused for good. ``down``: every attempt fails (retryable).
    ``hang``: every attempt waits until ``release`` is set. ``delay_s``: each attempt takes this.
    """

    clock: LoopClock
    fail: dict[str, int] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)
    down: bool = False
    hang: bool = False
    delay_s: float = 0.0
    retry_after_s: float | None = None
    attempts: list[tuple[float, str]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    async def deliver(self, item: Deliverable) -> None:
        self.attempts.append((self.clock.now(), item.id))
        if self.hang:
            await self.release.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            raise SinkUnavailable("connection refused", retry_after_s=self.retry_after_s)
        if item.id in self.refuse:
            raise SinkRejected("HTTP 400 bad request")
        left = self.fail.get(item.id, 0)
        if left:
            self.fail[item.id] = left - 1
            raise SinkUnavailable("HTTP 503")
        self.received.append(item.id)

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class BatchingSink(ScriptedSink):
    """A :class:`ScriptedSink` that can also take a batch in one call (a JSONL file's way).

    ``batch_fails``: every batch call fails (retryable), so the outbox must fall back to
    one item at a time. ``batches`` lists the ids of each batch call.
    """

    batch_fails: bool = False
    batches: list[list[str]] = field(default_factory=list)

    async def deliver_batch(self, items: Sequence[Deliverable]) -> None:
        self.batches.append([item.id for item in items])
        if self.batch_fails:
            raise SinkUnavailable("batch write failed")
        self.received.extend(item.id for item in items)
