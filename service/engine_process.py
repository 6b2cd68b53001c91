"""The engine in a process of its own, following the journal by position.

Why a process: the listener's event loop, the journal's writer and the engine
share one interpreter lock in one process. Evaluation is pure Python (and
durable-rules' native calls hold the lock), so every acknowledgement waited
for the engine to let go of it, and on 2 cores the second core sat idle. Here
the service process keeps the loop and the only journal writer; the engine
process reads its inputs from the journal over a read connection of its own.

The parent sends only "committed up to N" (:class:`Committed`), so no event
is pickled across. The child sends back what must be journaled (findings and
withdrawals with their input's position, ticks, snapshots), in its order; the
parent queues each on the single writer without waiting, so they are
committed in that order and a snapshot never lands before the outputs it
covers. A crash of either side loses nothing: the journal holds every input,
and a restart recovers the engine from its snapshot and the inputs after it.

Messages, parent to child: :class:`Committed`, :class:`Wake`, :class:`Call`,
:class:`Stop`. Child to parent: :class:`Ready`, :class:`Emitted`,
:class:`TickAsked`, :class:`SnapshotTaken`, :class:`Status`, :class:`Reply`,
:class:`Failed`, :class:`Stopped`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import structlog
from pumpguard.engine.clock import Clock, LiveClock, ManualClock
from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding, Withdrawal
from pumpguard.engine.pack import CompiledPack

from . import journal_reads as reads
from .journal_records import JournalInput
from .journal_schema import connect_reader
from .live import History, LiveCore, LiveInput, Outputs
from .worker import EngineWorker, OutputJournal, latency_summary, recover

__all__ = ["EngineProcess", "EngineProcessError", "EngineSpec", "engine_main"]

log = structlog.get_logger("pumpguard.service")

STATUS_EVERY_S = 0.25
"""How often the child tells the parent how far it has come (health, lag, /metrics)."""


class EngineProcessError(RuntimeError):
    """The engine process did not start, stopped answering, or exited."""


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Everything the child needs to build its engine (plain data, picklable)."""

    journal: Path
    pack: CompiledPack
    clock: str
    late_after_s: float
    sinks: tuple[str, ...]
    pack_sha256: str
    code_version: str
    snapshot_every_inputs: int
    snapshot_every_s: float
    hold: Mapping[str, float]
    busy_timeout_ms: int = 5000

    def core(self, history: History) -> LiveCore:
        """The live core this spec describes, reading late data from ``history``."""
        return LiveCore(self.pack, history, late_after_s=self.late_after_s)

    def worker(
        self,
        core: LiveCore,
        journal: OutputJournal,
        clock: Clock,
        *,
        on_outputs: Callable[[Outputs], None] = lambda _o: None,
        log_latency: bool = True,
    ) -> EngineWorker:
        """The engine thread driving ``core``: the same settings in either process."""
        return EngineWorker(
            core,
            journal,
            clock,
            sinks=self.sinks,
            pack_sha256=self.pack_sha256,
            code_version=self.code_version,
            on_outputs=on_outputs,
            snapshot_every_inputs=self.snapshot_every_inputs,
            snapshot_every_s=self.snapshot_every_s,
            hold=self.hold,
            log_latency=log_latency,
        )


def service_clock(kind: str) -> Clock:
    """The service's clock for config ``clock``: the wall, or time following the events."""
    return LiveClock() if kind == "wall" else ManualClock(0.0, mode="live")


# -- parent to child ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Committed:
    position: int


@dataclass(frozen=True, slots=True)
class Wake:
    pass


@dataclass(frozen=True, slots=True)
class Call:
    """A question for the engine's state (answered under the engine's lock)."""

    call_id: int
    name: str
    arg: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


# -- child to parent ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ready:
    recovered_from: int | None
    recovered_inputs: int


@dataclass(frozen=True, slots=True)
class Emitted:
    position: int
    items: tuple[Finding | Withdrawal, ...]
    sinks: tuple[str, ...]
    hold: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class TickAsked:
    at: float


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    position: int
    pack_sha256: str
    code_version: str
    blob: bytes


@dataclass(frozen=True, slots=True)
class Status:
    evaluated: int
    position: int
    watermark: float


@dataclass(frozen=True, slots=True)
class Reply:
    call_id: int
    value: Any
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    error: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The last message: the engine has drained, snapshotted and ends."""


# -- the child -----------------------------------------------------------------------
class _JournalView:
    """The journal as the engine process reads it: one read-only connection."""

    def __init__(self, path: Path, busy_timeout_ms: int) -> None:
        self.conn = connect_reader(path, busy_timeout_ms)

    def latest_snapshot(self, pack_sha256: str, code_version: str) -> tuple[int, bytes] | None:
        return reads.latest_snapshot(self.conn, pack_sha256, code_version)

    def inputs_after(self, position: int) -> Iterator[JournalInput]:
        yield from reads.iter_inputs_after(self.conn, position)

    def patient_events(
        self, patient_id: str, *, since_ts: float | None = None
    ) -> list[tuple[int, Event]]:
        return reads.patient_events(self.conn, patient_id, since_ts)


class _PipeJournal:
    """The worker's journal in the child: what it would write goes to the parent, in order."""

    def __init__(self, send: Callable[[object], None]) -> None:
        self.send = send

    def append_tick(self, at: float) -> object:
        self.send(TickAsked(at))  # journaled by the parent; comes back as Committed
        return None

    def record_outputs(
        self,
        outputs: Sequence[Finding | Withdrawal],
        sinks: Sequence[str],
        *,
        position: int,
        hold: Mapping[str, float] | None = None,
    ) -> list[str]:
        self.send(Emitted(position, tuple(outputs), tuple(sinks), dict(hold or {})))
        return []

    def save_snapshot(
        self, position: int, pack_sha256: str, code_version: str, blob: bytes
    ) -> None:
        self.send(SnapshotTaken(position, pack_sha256, code_version, blob))


def engine_main(conn: Connection, spec: EngineSpec) -> None:
    """The engine process: recover, say ready, then follow the journal until told to stop.

    It ignores SIGINT and SIGTERM (a terminal's ^C or a service manager reaches the whole
    group): the parent decides when it stops, and its death closes the pipe, which ends
    this process too.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    lock = threading.Lock()

    def send(message: object) -> None:
        with lock:
            conn.send(message)

    view = _JournalView(spec.journal, spec.busy_timeout_ms)
    worker = spec.worker(
        spec.core(view),
        _PipeJournal(send),
        service_clock(spec.clock),
        log_latency=False,  # the parent measures it, to the commit of the finding
    )
    try:
        done = recover(worker, view)
    except Exception as exc:  # the parent reports it and exits non-zero
        send(Failed(f"recovery failed: {exc!r}"))
        return
    send(Ready(done.from_position, done.inputs))
    worker.start()
    try:
        _follow(conn, send, worker, view)
    except (EOFError, OSError):  # the parent is gone: what it did not journal is replayed
        return


def _follow(
    conn: Connection, send: Callable[[object], None], worker: EngineWorker, view: _JournalView
) -> None:
    """Take what the parent sent, a batch at a time: read every committed input once, then
    answer, wake or stop in the order asked (a stop comes after what was committed)."""
    fed = worker.core.position
    reported_failure = False
    last_status = 0.0
    while True:
        batch: list[object] = [conn.recv()] if conn.poll(STATUS_EVERY_S) else []
        while batch and len(batch) < 10_000 and conn.poll(0):
            batch.append(conn.recv())
        upto = max((m.position for m in batch if isinstance(m, Committed)), default=fed)
        if upto > fed:
            new = [i for i in view.inputs_after(fed) if i.position <= upto]
            if new:
                worker.committed(new)
                fed = new[-1].position
        for message in batch:
            if isinstance(message, Wake):
                worker.wake()
            elif isinstance(message, Call):
                send(_answer(worker, message))
            elif isinstance(message, Stop):
                worker.stop()
                worker.join()
                send(_status(worker))
                send(Stopped())
                return
        if worker.failed is not None and not reported_failure:
            reported_failure = True
            send(Failed(f"engine thread stopped: {worker.failed!r}"))
        now = time.monotonic()
        if now - last_status >= STATUS_EVERY_S:
            last_status = now
            send(_status(worker))


def _status(worker: EngineWorker) -> Status:
    with worker.lock:
        core = worker.core
        return Status(worker.evaluated, core.position, core.engine.watermark)


def _answer(worker: EngineWorker, call: Call) -> Reply:
    try:
        if call.name == "patient_view":
            return Reply(call.call_id, worker.patient_view(call.arg))
        return Reply(call.call_id, None, f"unknown call {call.name!r}")
    except Exception as exc:  # the HTTP request hears it; the engine goes on
        return Reply(call.call_id, None, repr(exc))


# -- the parent ----------------------------------------------------------------------
class ParentJournal(Protocol):
    """The journal as the parent writes the child's outputs (queued, never waited on)."""

    def submit_outputs(
        self,
        outputs: Sequence[Finding | Withdrawal],
        sinks: Sequence[str],
        *,
        position: int,
        hold: Mapping[str, float] | None = None,
    ) -> concurrent.futures.Future[list[str]]: ...

    def submit_tick(self, at: float) -> concurrent.futures.Future[Any]: ...

    def submit_snapshot(
        self, position: int, pack_sha256: str, code_version: str, blob: bytes
    ) -> concurrent.futures.Future[None]: ...


class EngineProcess:
    """The service's handle on the engine process: the same calls as :class:`EngineWorker`.

    ``committed`` is called by the journal's writer thread, ``wake``, ``stop`` and
    ``patient_view`` by the event loop (the last from a thread, it waits for the
    child); one reader thread takes what the child sends and queues it on the journal.
    """

    def __init__(
        self,
        spec: EngineSpec,
        journal: ParentJournal,
        clock: Clock,
        *,
        on_outputs: Callable[[Outputs], None] = lambda _o: None,
        call_timeout_s: float = 5.0,
    ) -> None:
        self.spec = spec
        self.journal = journal
        self.clock = clock
        self.on_outputs = on_outputs
        self.hold = dict(spec.hold)
        self.call_timeout_s = call_timeout_s
        self._ctx = multiprocessing.get_context("spawn")  # a fork would copy the loop's threads
        self._conn, self._child_conn = self._ctx.Pipe(duplex=True)
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._calls_lock = threading.Lock()
        self._calls: dict[int, concurrent.futures.Future[Any]] = {}
        self._next_call = 0
        self._ready: concurrent.futures.Future[Ready] = concurrent.futures.Future()
        self._ended = threading.Event()
        self._stopping = False
        self._committed_at: deque[tuple[int, float]] = deque()
        self.finding_latency: deque[float] = deque(maxlen=100_000)
        """Seconds from an input's commit to the commit of the findings it raised."""
        self.evaluated = 0
        self.position = 0
        self.watermark = float("-inf")
        self._failed: str | None = None
        self._reader = threading.Thread(
            target=self._read, name="pumpguard-engine-pipe", daemon=True
        )
        self._outbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._sender = threading.Thread(
            target=self._send_all, name="pumpguard-engine-send", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Spawn the child (it recovers on its own); :meth:`wait_ready` waits for it."""
        self._proc = self._ctx.Process(
            target=engine_main, args=(self._child_conn, self.spec), name="pumpguard-engine"
        )
        self._proc.start()
        self._child_conn.close()
        self._reader.start()
        self._sender.start()

    def wait_ready(self, timeout_s: float = 300.0) -> Ready:
        """The child's recovery: snapshot position and inputs replayed (raises if it failed)."""
        try:
            return self._ready.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            msg = f"the engine process was not ready within {timeout_s:g} s"
            raise EngineProcessError(msg) from None

    def stop(self) -> None:
        """Finish what is committed, snapshot, and end (the child does it, then exits)."""
        self._stopping = True
        self._send(Stop())

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():  # it did not end when told: nothing is lost by this
                self._proc.kill()
                self._proc.join()

    # -- what the service calls ------------------------------------------------
    def committed(self, inputs: Sequence[LiveInput]) -> None:
        """The journal's ``on_commit`` (writer thread): the child reads them itself."""
        if not inputs:
            return
        now = time.monotonic()
        self._committed_at.extend((i.position, now) for i in inputs)
        self._send(Committed(inputs[-1].position))

    def wake(self) -> None:
        self._send(Wake())

    @property
    def failed(self) -> str | None:
        """Why the engine stopped (None while it runs)."""
        return self._failed

    def patient_view(self, patient_id: str) -> Any:
        """One patient's derived state, asked of the child (blocks: call from a thread)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._calls_lock:
            self._next_call += 1
            call_id = self._next_call
            self._calls[call_id] = future
        self._send(Call(call_id, "patient_view", patient_id))
        try:
            return future.result(timeout=self.call_timeout_s)
        except concurrent.futures.TimeoutError:
            with self._calls_lock:
                self._calls.pop(call_id, None)
            msg = f"the engine did not answer within {self.call_timeout_s:g} s"
            raise EngineProcessError(msg) from None

    def latency_summary(self) -> dict[str, float]:
        """Commit-to-committed-finding latency (ms) of the inputs that raised findings."""
        return latency_summary(self.finding_latency)

    # -- inside ----------------------------------------------------------------
    def _send(self, message: object) -> None:
        """Queue for the child; never blocks (the journal's writer thread calls it)."""
        self._outbox.put(message)

    def _send_all(self) -> None:
        """The sender thread: in order, with runs of Committed folded into the last one."""
        while not self._ended.is_set():
            batch = [self._outbox.get()]
            while True:
                try:
                    batch.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            out: list[object] = []
            for message in batch:
                if isinstance(message, Committed) and out and isinstance(out[-1], Committed):
                    out[-1] = message
                else:
                    out.append(message)
            try:
                for message in out:
                    self._conn.send(message)
            except (OSError, ValueError) as exc:  # the child is gone; the reader reports it
                self._fail(f"engine process unreachable: {exc!r}")
                return

    def _read(self) -> None:
        try:
            while True:
                message = self._conn.recv()
                if isinstance(message, Stopped):
                    return
                self._handle(message)
        except (EOFError, OSError):
            if not self._stopping:
                code = self._proc.exitcode if self._proc is not None else None
                self._fail(f"the engine process exited (code {code})")
        finally:
            self._ended.set()
            self._outbox.put(Wake())  # lets the sender thread see the end
            with self._calls_lock:
                for future in self._calls.values():
                    future.set_exception(EngineProcessError("the engine process ended"))
                self._calls.clear()
            if not self._ready.done():
                self._ready.set_exception(EngineProcessError(self._failed or "it ended"))

    def _handle(self, message: object) -> None:
        if isinstance(message, Emitted):
            future = self.journal.submit_outputs(
                message.items, message.sinks, position=message.position, hold=message.hold
            )
            future.add_done_callback(functools.partial(self._emitted, message))
        elif isinstance(message, TickAsked):
            _watch(self.journal.submit_tick(message.at), "tick")
        elif isinstance(message, SnapshotTaken):
            _watch(
                self.journal.submit_snapshot(
                    message.position, message.pack_sha256, message.code_version, message.blob
                ),
                "snapshot",
            )
        elif isinstance(message, Status):
            self.evaluated, self.position, self.watermark = (
                message.evaluated,
                message.position,
                message.watermark,
            )
        elif isinstance(message, Reply):
            with self._calls_lock:
                waiter = self._calls.pop(message.call_id, None)
            if waiter is not None:
                if message.error is None:
                    waiter.set_result(message.value)
                else:
                    waiter.set_exception(EngineProcessError(message.error))
        elif isinstance(message, Ready):
            self._ready.set_result(message)
        elif isinstance(message, Failed):
            self._fail(message.error)

    def _emitted(self, message: Emitted, future: concurrent.futures.Future[list[str]]) -> None:
        """On the writer thread, once the outputs are committed: count them, wake delivery."""
        if future.exception() is not None:
            _watch(future, "outputs")
            return
        now = time.monotonic()
        committed = None
        while self._committed_at and self._committed_at[0][0] <= message.position:
            position, committed_at = self._committed_at.popleft()
            if position == message.position:
                committed = committed_at
        findings = tuple(i for i in message.items if isinstance(i, Finding))
        withdrawals = tuple(i for i in message.items if isinstance(i, Withdrawal))
        if committed is not None and findings:
            self.finding_latency.append(now - committed)
        self.on_outputs(Outputs(findings, withdrawals))

    def _fail(self, error: str) -> None:
        if self._failed is None:
            self._failed = error
            log.critical("engine process stopped", error=error)


def _watch(future: concurrent.futures.Future[Any], what: str) -> None:
    """Log a queued write that failed (the journal then refuses writes; /healthz says so)."""

    def done(f: concurrent.futures.Future[Any]) -> None:
        exc = f.exception()
        if exc is not None:
            log.error("journal write from the engine failed", what=what, error=repr(exc))

    future.add_done_callback(done)
