"""The engine thread: journal inputs in position order, deadlines on the live clock.

One thread owns the live core, so the engine sees exactly the journal's order
(the journal's writer thread hands each committed batch over, in position
order) and the event loop never waits on an evaluation. When no input comes,
the thread wakes at the engine's next due deadline and journals a tick; the
tick comes back through the same queue, so a tick is evaluated in its journal
position like any other input and recovery replays it at the same place.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog
from pumpguard.engine.clock import Clock, ManualClock
from pumpguard.engine.findings import Finding, Withdrawal

from .live import LiveCore, LiveInput, Outputs

if TYPE_CHECKING:
    from .http_models import PatientView

__all__ = [
    "EngineWorker",
    "OutputJournal",
    "Recovered",
    "RecoverySource",
    "latency_summary",
    "recover",
]

log = structlog.get_logger("pumpguard.service")


def latency_summary(values_in: Iterable[float]) -> dict[str, float]:
    """p50/p99 in ms of a sample of seconds (empty: nothing)."""
    values = sorted(values_in)
    if not values:
        return {}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)

    return {"count": len(values), "p50_ms": at(0.5), "p99_ms": at(0.99)}


MAX_WAIT_S = 1.0
"""The thread re-reads the clock at least this often (a deadline opened meanwhile is seen)."""


class OutputJournal(Protocol):
    """The journal as the engine thread uses it."""

    def append_tick(self, at: float) -> object: ...

    def record_outputs(
        self,
        outputs: Sequence[Finding | Withdrawal],
        sinks: Sequence[str],
        *,
        position: int,
        hold: Mapping[str, float] | None = None,
    ) -> list[str]: ...

    def save_snapshot(
        self, position: int, pack_sha256: str, code_version: str, blob: bytes
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


@dataclass(frozen=True, slots=True)
class _Wake:
    """Look at the clock now (it was moved, or a deadline may have come due)."""


class EngineWorker(threading.Thread):
    """Drives a :class:`LiveCore` from a queue fed by the journal's commits."""

    def __init__(
        self,
        core: LiveCore,
        journal: OutputJournal,
        clock: Clock,
        *,
        sinks: Sequence[str],
        pack_sha256: str,
        code_version: str,
        on_outputs: Callable[[Outputs], None] = lambda _o: None,
        snapshot_every_inputs: int = 20_000,
        snapshot_every_s: float = 60.0,
        hold: Mapping[str, float] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        log_latency: bool = True,
    ) -> None:
        super().__init__(name="pumpguard-engine", daemon=True)
        self.core = core
        self.journal = journal
        self.clock = clock
        self.sinks = tuple(sinks)
        self.pack_sha256 = pack_sha256
        self.code_version = code_version
        self.on_outputs = on_outputs
        self.snapshot_every_inputs = snapshot_every_inputs
        self.snapshot_every_s = snapshot_every_s
        self._mono = monotonic
        self._log_latency = log_latency
        self.hold = dict(hold or {})
        self.lock = threading.Lock()
        self.inbox: queue.Queue[LiveInput | _Stop | _Wake] = queue.Queue()
        self._tick_pending = False
        self._since_snapshot = 0
        self._snapshot_at = monotonic()
        self.failed: BaseException | None = None
        self.evaluated = 0
        self._committed_at: dict[int, float] = {}
        self.finding_latency: deque[float] = deque(maxlen=100_000)
        """Seconds from an input's commit to the journaling of the findings it raised."""

    # -- fed by the journal's writer thread --------------------------------------
    def committed(self, inputs: Sequence[LiveInput]) -> None:
        """The journal's ``on_commit``: new inputs, in position order."""
        now = self._mono()
        for inp in inputs:
            self._committed_at[inp.position] = now
            self.inbox.put(inp)

    def latency_summary(self) -> dict[str, float]:
        """Commit-to-journaled-finding latency (ms) of the inputs that raised findings."""
        return latency_summary(self.finding_latency)

    @property
    def position(self) -> int:
        """The journal position evaluated last."""
        return self.core.position

    @property
    def watermark(self) -> float:
        """The engine's event time (read without the lock: one float)."""
        return self.core.engine.watermark

    def patient_view(self, patient_id: str) -> PatientView | None:
        """One patient's derived state now, read under the engine's lock."""
        from .views import patient_view

        return patient_view(self, patient_id)

    def wake(self) -> None:
        """Re-read the clock at once (an injected clock was moved; tests, a clock step)."""
        self.inbox.put(_Wake())

    def stop(self) -> None:
        """Finish what is queued, snapshot, and end."""
        self.inbox.put(_Stop())

    # -- the thread --------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                item = self._next()
                if isinstance(item, _Stop):
                    break
                if item is not None and not isinstance(item, _Wake):
                    self.process(item)
            self.snapshot()
            if self.finding_latency and self._log_latency:
                log.info("event to finding", **self.latency_summary())
        except BaseException as exc:  # the service reports it on /healthz; nothing is lost
            self.failed = exc
            log.critical("engine thread stopped", error=repr(exc))

    def _next(self) -> LiveInput | _Stop | _Wake | None:
        wait = MAX_WAIT_S
        with self.lock:
            due = self.core.next_due()
        now = self.clock.now()
        if due is not None and not self._tick_pending:
            if due <= now:
                self._tick_pending = True
                self.journal.append_tick(now)  # comes back through the inbox
                return None
            wait = min(wait, due - now)
        try:
            return self.inbox.get(timeout=max(wait, 0.0))
        except queue.Empty:
            return None

    def process(self, inp: LiveInput) -> Outputs:
        """Evaluate one input, journal what it raised, hand it to delivery; maybe snapshot."""
        with self.lock:
            out = self.core.process(inp)
        for event in inp.events:
            self.clock.observe(event.ts.timestamp())  # a no-op on the wall clock
        if inp.kind == "tick":
            self._tick_pending = False
        committed = self._committed_at.pop(inp.position, None)
        if out:
            self.journal.record_outputs(
                [*out.findings, *out.withdrawals],
                self.sinks,
                position=inp.position,
                hold=self.hold,
            )
            self.on_outputs(out)
            if committed is not None and out.findings:
                self.finding_latency.append(self._mono() - committed)
        self.evaluated += 1
        self._since_snapshot += 1
        if (
            self._since_snapshot >= self.snapshot_every_inputs
            or self._mono() - self._snapshot_at >= self.snapshot_every_s
        ):
            self.snapshot()
        return out

    def snapshot(self) -> None:
        """Store the core's state at its position (a restart replays only what follows)."""
        with self.lock:
            if self.core.position == 0:
                return
            blob = self.core.snapshot()
            position = self.core.position
        self.journal.save_snapshot(position, self.pack_sha256, self.code_version, blob)
        self._since_snapshot = 0
        self._snapshot_at = self._mono()


class RecoverySource(Protocol):
    """Where a starting engine reads its snapshot and the journal after it."""

    def latest_snapshot(self, pack_sha256: str, code_version: str) -> tuple[int, bytes] | None: ...

    def inputs_after(self, position: int) -> Iterable[LiveInput]: ...


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a start recovered: the snapshot's position (None: none usable) and inputs replayed."""

    from_position: int | None
    inputs: int


def recover(worker: EngineWorker, source: RecoverySource) -> Recovered:
    """Newest snapshot of this pack and code, then every journal input after it.

    Run before the worker thread starts (in the service, or in the engine process).
    """
    core = worker.core
    snap = source.latest_snapshot(worker.pack_sha256, worker.code_version)
    start: int | None = None
    if snap is not None:
        start, blob = snap
        core.restore(blob)
    count = 0
    for inp in source.inputs_after(core.position):
        out = core.process(inp)
        if out:
            worker.journal.record_outputs(
                [*out.findings, *out.withdrawals],
                worker.sinks,
                position=inp.position,
                hold=worker.hold,
            )
        count += 1
    if isinstance(worker.clock, ManualClock):  # the event clock goes on from the journal's time
        worker.clock.observe(core.clock.now())
    if count:
        worker.snapshot()
    return Recovered(start, count)
