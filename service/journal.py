"""The service's crash-safe journal: every message received, every engine input, every output.

An embedded SQLite file in WAL mode with ``synchronous=FULL``, so a commit is on disk
(the WAL fsynced) before anyone hears it succeeded. One writer thread owns the write
connection and commits in groups: it drains whatever is queued (up to ``max_batch``)
into one transaction, commits once, and only then resolves each waiter. Many
connections thus share one fsync, and a message is acknowledged only once it is
durable. Readers use connections of their own.

The engine's input log (``inputs``) is the order of truth: ``on_commit`` hands each
batch's new inputs to the live core in position order, and recovery replays
:meth:`Journal.inputs_after` a snapshot's position.

Records and errors are in :mod:`.journal_records` (re-exported here); the writes in
:mod:`.journal_ops`, the reads in :mod:`.journal_reads`, the schema in
:mod:`.journal_schema`, and how the writer runs one batch's writes in
:mod:`.journal_batch`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog
from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding, Withdrawal
from pumpguard.service import journal_ops as ops
from pumpguard.service import journal_reads as reads
from pumpguard.service.journal_batch import (
    LoopWaiter,
    Op,
    Write,
    apply_writes,
    settle,
    settle_all,
)
from pumpguard.service.journal_records import (
    OUTCOMES,
    Appended,
    Inbound,
    JournalClosedError,
    JournalError,
    JournalFormatError,
    JournalInput,
    JournalStats,
    MessageFate,
    OutboxItem,
    SinkBacklog,
    StoredFinding,
    StoredMessage,
    StoredWithdrawal,
)
from pumpguard.service.journal_schema import SCHEMA_VERSION, connect_reader, connect_writer
from pumpguard.service.seen_keys import SeenKeys

__all__ = [
    "OUTCOMES",
    "SCHEMA_VERSION",
    "Appended",
    "Inbound",
    "Journal",
    "JournalClosedError",
    "JournalError",
    "JournalFormatError",
    "JournalInput",
    "JournalStats",
    "MessageFate",
    "OutboxItem",
    "SinkBacklog",
    "StoredFinding",
    "StoredMessage",
    "StoredWithdrawal",
]

log = structlog.get_logger("pumpguard.journal")

T = TypeVar("T")
OnCommit = Callable[[list[JournalInput]], None]
_STOP = object()


class Journal:
    """One journal file, opened by one process (the service, or a CLI command).

    ``on_commit`` is called from the writer thread after each COMMIT with that batch's
    new engine inputs (ticks included) in position order; calls come one batch after
    another, so a consumer fed from it sees exactly the journal's order. If it raises,
    the batch stays durable and acknowledged, but the journal then refuses every
    further write (the consumer has lost inputs: restart and recover from the file).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        on_commit: OnCommit | None = None,
        max_batch: int = 1000,
        busy_timeout_ms: int = 5000,
        keep_snapshots: int = 3,
        commit_delay_s: float = 0.002,
        remember_keys: bool = False,
    ) -> None:
        if max_batch < 1:
            raise JournalError(f"max_batch must be at least 1, not {max_batch}")
        self.path = Path(path)
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._busy_ms = busy_timeout_ms
        self._keep_snapshots = keep_snapshots
        self._commit_delay = commit_delay_s
        self._last_batch = 1
        self.commits = 0
        """Transactions committed so far (group commit makes it far fewer than writes)."""
        self._fatal: JournalError | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Op | object] = queue.SimpleQueue()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._conn = connect_writer(self.path, busy_timeout_ms)
        newest = int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()[0])
        self.seen = SeenKeys(max(100_000, 2 * newest))
        """The dedupe keys journaled (a Bloom filter, about 1.8 bytes a key): with
        ``remember_keys`` (the service), :meth:`answer_of` asks SQLite only about a key it
        may hold. Keys from before this open are loaded in the background; the writer
        adds each new one inside its transaction, before any reader can see the row.
        It knows only this process's writes: one journal, one writing process."""
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()
        self._loader = threading.Thread(
            target=self._load_keys, args=(newest,), name="journal-keys", daemon=True
        )
        if remember_keys:
            self._loader.start()

    # ------------------------------------------------------------------ writes

    async def append(self, inbound: Inbound) -> Appended:
        """Journal one message; resolves only once its batch is committed (durable).

        Cancelling the caller does not withdraw the message: it was received, so it is
        stored all the same (only the answer is lost, and a resend is recognised).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Appended] = loop.create_future()
        write, key = _append(inbound)
        self._enqueue(Op(write, LoopWaiter(loop, future), key))
        return await future

    def append_wait(self, inbound: Inbound) -> Appended:
        """:meth:`append`, blocking (CLI, tests, threads)."""
        result: Appended = self._wait(*_append(inbound))
        return result

    def submit(self, inbound: Inbound) -> concurrent.futures.Future[Appended]:
        """Queue one message; the future resolves once its batch is committed."""
        return self._submit(*_append(inbound))

    def append_tick(self, at: float) -> JournalInput:
        """A tick (deadlines fired up to ``at``), durable before this returns.

        It also comes back through ``on_commit`` in its place in the log: a consumer
        fed from there acts on it when it arrives, so ticks and events stay in order.
        """
        return self._wait(lambda conn: ops.tick(conn, at))

    def record_outputs(
        self,
        outputs: Sequence[Finding | Withdrawal],
        sinks: Sequence[str],
        *,
        position: int,
        hold: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Journal each finding/withdrawal once (by id) and enqueue each new one for every
        sink; returns the ids that were new. ``position``: the input that raised them;
        ``hold``: grace periods by code (:func:`.journal_ops.record_outputs`)."""
        items = tuple(outputs)
        names = tuple(sinks)
        held = dict(hold or {})
        return self._wait(lambda conn: ops.record_outputs(conn, items, names, position, held))

    def submit_outputs(
        self,
        outputs: Sequence[Finding | Withdrawal],
        sinks: Sequence[str],
        *,
        position: int,
        hold: Mapping[str, float] | None = None,
    ) -> concurrent.futures.Future[list[str]]:
        """:meth:`record_outputs` without waiting: the engine process's outputs are queued in
        the order they come, so a snapshot queued after them is committed after them."""
        items, names, held = tuple(outputs), tuple(sinks), dict(hold or {})
        return self._submit(lambda conn: ops.record_outputs(conn, items, names, position, held))

    def submit_tick(self, at: float) -> concurrent.futures.Future[JournalInput]:
        """:meth:`append_tick` without waiting (it comes back through ``on_commit``)."""
        return self._submit(lambda conn: ops.tick(conn, at))

    def submit_snapshot(
        self, position: int, pack_sha256: str, code_version: str, blob: bytes
    ) -> concurrent.futures.Future[None]:
        """:meth:`save_snapshot` without waiting."""
        keep = self._keep_snapshots
        return self._submit(
            lambda conn: ops.save_snapshot(conn, position, pack_sha256, code_version, blob, keep)
        )

    def mark_delivered(self, sink: str, item_ids: Sequence[int], at: float) -> None:
        ids = tuple(item_ids)
        self._wait(lambda conn: ops.mark_delivered(conn, sink, ids, at))

    def mark_retry(self, sink: str, item_id: int, next_at: float, error: str) -> None:
        self._wait(lambda conn: ops.mark_retry(conn, sink, item_id, next_at, error))

    def save_snapshot(
        self, position: int, pack_sha256: str, code_version: str, blob: bytes
    ) -> None:
        """Store the engine's state as of ``position``; only the newest few are kept."""
        keep = self._keep_snapshots
        self._wait(
            lambda conn: ops.save_snapshot(conn, position, pack_sha256, code_version, blob, keep)
        )

    def remap(
        self,
        message_seq: int,
        events: Sequence[Event],
        outcome: str,
        reason: str | None,
        *,
        at: float | None = None,
    ) -> Appended:
        """A rejected message mapped again: its new events become a new input at the end of
        the log; the message keeps its history (:meth:`message_history`)."""
        evs = tuple(events)
        return self._wait(lambda conn: ops.remap(conn, message_seq, evs, outcome, reason, at))

    def settings(self) -> dict[str, Any]:
        """The write connection's PRAGMAs as SQLite reports them (journal_mode, synchronous)."""

        def read(conn: sqlite3.Connection) -> tuple[dict[str, Any], list[JournalInput]]:
            names = ("journal_mode", "synchronous", "user_version", "busy_timeout")
            return {n: conn.execute(f"PRAGMA {n}").fetchone()[0] for n in names}, []

        return self._wait(read)

    # ------------------------------------------------------------------ reads

    def inputs_after(self, position: int) -> Iterator[JournalInput]:
        """Every engine input after ``position`` (0: all), in order: recovery and export."""
        with self._own_reader() as conn:
            yield from reads.iter_inputs_after(conn, position)

    def patient_events(
        self, patient_id: str, *, since_ts: float | None = None
    ) -> list[tuple[int, Event]]:
        """(position, event) of one patient's events in position order (late data)."""
        return reads.patient_events(self._reader(), patient_id, since_ts)

    def outbox_due(self, sink: str, now: float, limit: int = 100) -> list[OutboxItem]:
        return reads.outbox_due(self._reader(), sink, now, limit)

    @property
    def failure(self) -> str | None:
        """Why the journal refuses writes (None while it is healthy)."""
        return None if self._fatal is None else str(self._fatal)

    def backlog(self, now: float | None = None) -> dict[str, SinkBacklog]:
        """Pending count and oldest pending item per sink (its age when ``now`` is given)."""
        return reads.backlog(self._reader(), now)

    def findings(
        self,
        *,
        patient_id: str | None = None,
        severity: str | None = None,
        min_severity: str | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[StoredFinding]:
        """Findings by finding time, each with its withdrawn flag (and which withdrawal)."""
        return reads.findings(
            self._reader(),
            patient_id=patient_id,
            severity=severity,
            min_severity=min_severity,
            since=since,
            limit=limit,
        )

    def withdrawals(
        self, *, patient_id: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[StoredWithdrawal]:
        return reads.withdrawals(self._reader(), patient_id=patient_id, since=since, limit=limit)

    def latest_snapshot(self, pack_sha256: str, code_version: str) -> tuple[int, bytes] | None:
        """(position, blob) of the newest snapshot of this pack and code; None if there is none."""
        return reads.latest_snapshot(self._reader(), pack_sha256, code_version)

    def messages(
        self,
        *,
        outcome: str | None = None,
        channel: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> Iterator[StoredMessage]:
        """Messages in the order received (current outcome, after any remap)."""
        with self._own_reader() as conn:
            yield from reads.iter_messages(
                conn, outcome=outcome, channel=channel, after_seq=after_seq, limit=limit
            )

    def message(self, seq: int) -> StoredMessage | None:
        found = next(self.messages(after_seq=seq - 1, limit=1), None) if seq > 0 else None
        return found if found is not None and found.seq == seq else None

    def answer_of(self, dedupe_key: str) -> bytes | None:
        """The answer first given to the message with this dedupe key (None: never journaled).

        The MLLP listener asks before mapping, so a resend never reaches the feed's
        STOP/START pairing a second time.
        """
        reader = self._reader()  # a closed journal says so, filter or not
        if self.seen.complete and not self.seen.may_hold(dedupe_key):
            return None  # never journaled: no query, so the event loop keeps its lock
        row = reader.execute(
            "SELECT ack FROM messages WHERE dedupe_key = ?", (dedupe_key,)
        ).fetchone()
        return None if row is None else bytes(row[0] or b"")

    def latest_time(self) -> float | None:
        """The newest event time or tick journaled (None: an empty journal)."""
        return reads.latest_time(self._reader())

    def message_history(self, seq: int) -> list[MessageFate]:
        return reads.message_history(self._reader(), seq)

    def stats(self) -> JournalStats:
        return reads.stats(self._reader(), self.path)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Finish what is queued, stop the writer, close every connection; safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join()
        if self._loader.is_alive() and threading.current_thread() is not self._loader:
            self._loader.join()
        for conn in self._readers:
            conn.close()
        self._readers.clear()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _submit(self, write: Write, key: str | None = None) -> concurrent.futures.Future[Any]:
        """Queue a write; ``key``: the dedupe key of the message it stores (for the filter)."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._enqueue(Op(write, future, key))
        return future

    def _enqueue(self, op: Op) -> None:
        with self._lock:
            if self._closed:
                raise JournalClosedError(f"journal {self.path} is closed")
            if self._fatal is not None:
                raise self._fatal
            self._queue.put(op)

    def _wait(
        self,
        write: Callable[[sqlite3.Connection], tuple[T, list[JournalInput]]],
        key: str | None = None,
    ) -> T:
        if threading.current_thread() is self._thread:
            raise JournalError(
                "a blocking journal call from on_commit (the writer thread) would wait for "
                "itself; hand the work to another thread"
            )
        result: T = self._submit(write, key).result()
        return result

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (made on first use)."""
        if self._closed:
            raise JournalClosedError(f"journal {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path, self._busy_ms)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _own_reader(self) -> Iterator[sqlite3.Connection]:
        """A connection for one long iteration, so it never pins another read's snapshot."""
        if self._closed:
            raise JournalClosedError(f"journal {self.path} is closed")
        conn = connect_reader(self.path, self._busy_ms)
        try:
            yield conn
        finally:
            conn.close()

    def _load_keys(self, newest: int, chunk: int = 10_000) -> None:
        """Add the keys journaled before this open (seq up to ``newest``), then say complete;
        until then :meth:`answer_of` asks SQLite about every key, as without the filter."""
        try:
            conn = connect_reader(self.path, self._busy_ms)
        except sqlite3.Error as exc:
            _log_error("journal.keys_not_loaded", path=str(self.path), error=repr(exc))
            return
        try:
            after = 0
            while after < newest and not self._closed:
                rows = conn.execute(
                    "SELECT seq, dedupe_key FROM messages WHERE seq > ? AND seq <= ?"
                    " AND dedupe_key IS NOT NULL ORDER BY seq LIMIT ?",
                    (after, newest, chunk),
                ).fetchall()
                if not rows:
                    break
                self.seen.add_all([str(key) for _, key in rows])
                after = int(rows[-1][0])
            self.seen.complete = not self._closed
        except sqlite3.Error as exc:  # the filter stays incomplete: every key is asked of SQLite
            _log_error("journal.keys_not_loaded", path=str(self.path), error=repr(exc))
        finally:
            conn.close()

    def _run(self) -> None:
        batch: list[Op] = []
        try:
            stop = False
            while not stop:
                item = self._queue.get()
                if item is _STOP:
                    break
                gathered, stop = self._gather(item)
                batch = [op for op in gathered if isinstance(op, Op)]
                self._execute(batch)
                batch = []
        except BaseException as exc:  # a defect in the writer: fail loudly, never hang a waiter
            self._fatal = JournalClosedError(f"journal {self.path}: the writer stopped ({exc!r})")
            for op in batch:  # settled ones stay as they are; the rest hear why
                settle(op.future, error=self._fatal)
            _log_error("journal.writer_failed", path=str(self.path), error=repr(exc))
            raise
        finally:
            self._fail_queued()
            self._conn.close()

    def _gather(self, first: object) -> tuple[list[object], bool]:
        """The batch: ``first`` and what else is queued; True when close() was asked.

        While fewer listeners wait in the batch than the last commit released, the writer
        waits (up to ``commit_delay_s``, as PostgreSQL's commit_delay) for them to come
        back with their next message, so they share the next fsync instead of splitting
        it. Only listeners (``append`` from an event loop) count: the engine's outputs,
        ticks and snapshots do not come back after a commit, so counting them made the
        writer wait out the whole delay for a message that was never coming. A lone
        listener never waits.
        """
        batch = [first]
        back = _comes_back(first)
        deadline = time.monotonic() + self._commit_delay
        while len(batch) < self._max_batch:
            wait = deadline - time.monotonic() if self._last_batch > max(back, 1) else 0.0
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._last_batch = back
                return batch, True
            batch.append(item)
            back += _comes_back(item)
        self._last_batch = back
        return batch, False

    def _execute(self, batch: list[Op]) -> None:
        """One transaction for the batch; waiters hear of it only after COMMIT (all fail
        if the transaction fails). A write that raises fails alone: the batch is then
        done again with each write in a savepoint (rare, so the common path has none)."""
        if self._fatal is not None:
            for op in batch:
                settle(op.future, error=self._fatal)
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            applied = self._apply(conn, batch, isolate=False)
            if applied is None:
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                applied = self._apply(conn, batch, isolate=True)
            assert applied is not None
            # Before COMMIT makes the rows visible: a resend asked about between the two
            # would otherwise be told "never journaled". A rollback leaves a false "maybe".
            for op in batch:
                if op.key is not None:
                    self.seen.add(op.key)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failed = JournalError(
                f"journal {self.path}: a batch of {len(batch)} write(s) was not stored ({exc}); "
                "none of it is acknowledged"
            )
            for op in batch:
                settle(op.future, error=failed)
            return
        self.commits += 1
        done, made = applied
        if made and self._on_commit is not None:
            self._feed(made)
        settle_all([(op.future, (result, problem)) for op, result, problem in done])

    def _apply(
        self, conn: sqlite3.Connection, batch: list[Op], *, isolate: bool
    ) -> tuple[list[tuple[Op, Any, BaseException | None]], list[JournalInput]] | None:
        """Run each write; None when one raised and ``isolate`` is off (start over)."""
        return apply_writes(conn, batch, isolate=isolate, path=self.path)

    def _feed(self, made: list[JournalInput]) -> None:
        assert self._on_commit is not None
        try:
            self._on_commit(made)
        except Exception as exc:
            self._fatal = JournalError(
                f"journal {self.path}: the engine consumer failed at position "
                f"{made[0].position} ({exc!r}); no more writes: restart to recover"
            )
            _log_error(
                "journal.on_commit_failed",
                path=str(self.path),
                first_position=made[0].position,
                error=repr(exc),
            )

    def _fail_queued(self) -> None:
        error = self._fatal or JournalClosedError(f"journal {self.path} is closed")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Op):
                settle(item.future, error=error)


def _append(inbound: Inbound) -> tuple[Write, str | None]:
    """The write that stores one message, and its dedupe key (the filter's)."""
    return (lambda conn: ops.append(conn, inbound)), inbound.dedupe_key


def _comes_back(item: object) -> int:
    """1 for a listener's append (it sends its next message once answered), else 0."""
    return int(isinstance(item, Op) and isinstance(item.future, LoopWaiter))


def _log_error(event: str, **fields: Any) -> None:
    """Log from the writer thread; a broken log stream must never stop the writer."""
    with contextlib.suppress(Exception):
        log.error(event, **fields)
