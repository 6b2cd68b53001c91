"""The journal: durable before acknowledged, each message once, inputs in one order."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _journal_support import Gate, event, inbound, run_async
from pumpguard.service.journal import (
    Appended,
    Inbound,
    Journal,
    JournalClosedError,
    JournalError,
    JournalFormatError,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


def count(path: Path, sql: str, *args: object) -> int:
    """A count read through a connection of the test's own."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def test_write_connection_runs_wal_with_synchronous_full(path: Path) -> None:
    with Journal(path) as journal:
        settings = journal.settings()
    assert settings["journal_mode"] == "wal"
    assert settings["synchronous"] == 2  # FULL; NORMAL (1) loses acknowledged commits
    with sqlite3.connect(path) as conn:  # WAL is a property of the file, seen by anyone
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_waiter_resolves_only_after_its_batch_is_committed(path: Path) -> None:
    gate = Gate()
    with Journal(path, on_commit=gate) as journal:
        gate.hold()
        future = journal.submit(inbound(1))
        assert gate.entered.wait(10)
        # The writer sits between COMMIT and resolving: the row is already visible to
        # another process, and the waiter has not been told yet.
        probe = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(c.execute('SELECT count(*) FROM messages').fetchone()[0])"
        )
        seen = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=30
        )
        assert seen.stdout.strip() == "1"
        assert not future.done()
        gate.release.set()
        assert future.result(10).message_seq == 1


def test_async_append_returns_once_stored(path: Path) -> None:
    async def main(journal: Journal) -> Appended:
        appended = await journal.append(inbound(1))
        assert count(path, "SELECT count(*) FROM messages WHERE seq = ?", appended.message_seq)
        return appended

    with Journal(path) as journal:
        appended = run_async(main(journal))
    assert appended.position == 1
    assert not appended.duplicate


def test_failed_transaction_fails_its_waiters_and_stores_nothing(path: Path) -> None:
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        with Journal(path, busy_timeout_ms=50) as journal:
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the timeout
            futures = [journal.submit(inbound(n)) for n in range(3)]
            for future in futures:
                with pytest.raises(JournalError, match="not stored"):
                    future.result(10)
            blocker.execute("ROLLBACK")
            assert journal.append_wait(inbound(9)).message_seq == 1
    finally:
        blocker.close()
    assert count(path, "SELECT count(*) FROM messages") == 1


def test_concurrent_appends_share_commits(path: Path) -> None:
    async def produce(journal: Journal, producer: int) -> None:
        for i in range(25):
            await journal.append(inbound(producer * 100 + i))

    async def main(journal: Journal) -> None:
        await asyncio.gather(*(produce(journal, p) for p in range(8)))

    with Journal(path) as journal:
        before = journal.commits
        run_async(main(journal))
        commits = journal.commits - before
    assert count(path, "SELECT count(*) FROM messages") == 200
    assert commits < 200 / 2  # eight writers in flight: far fewer fsyncs than messages


def test_queued_writes_commit_in_batches_of_at_most_max_batch(path: Path) -> None:
    gate = Gate()
    with Journal(path, on_commit=gate, max_batch=10) as journal:
        gate.hold()
        first = journal.submit(inbound(0))
        assert gate.entered.wait(10)
        before = journal.commits
        queued = [journal.submit(inbound(n)) for n in range(1, 51)]
        gate.release.set()
        for future in [first, *queued]:
            future.result(10)
        assert journal.commits - before == 5


def test_resend_in_the_same_batch_is_a_duplicate_of_the_first(path: Path) -> None:
    gate = Gate()
    with Journal(path, on_commit=gate) as journal:
        gate.hold()
        journal.submit(inbound(0))
        assert gate.entered.wait(10)
        first, again = journal.submit(inbound(1)), journal.submit(inbound(1))
        gate.release.set()
        a, b = first.result(10), again.result(10)
    assert not a.duplicate
    assert b.duplicate
    assert b.original is not None
    assert b.original.seq == a.message_seq
    assert b.original.ack == b"MSA|AA|1"  # the resend is answered as the first was
    assert count(path, "SELECT count(*) FROM messages") == 2


def test_resend_in_a_later_batch_is_a_duplicate_and_stores_nothing(path: Path) -> None:
    with Journal(path) as journal:
        a = journal.append_wait(inbound(1))
        b = journal.append_wait(inbound(1))
        stats = journal.stats()
    assert (b.duplicate, b.message_seq, b.position, b.conflict) == (
        True,
        a.message_seq,
        None,
        False,
    )
    assert (stats.messages, stats.events, stats.resends) == (1, 1, 1)


def test_resend_after_reopening_is_still_a_duplicate(path: Path) -> None:
    with Journal(path) as journal:
        a = journal.append_wait(inbound(1))
    with Journal(path) as journal:
        b = journal.append_wait(inbound(1))
    assert b.duplicate
    assert b.message_seq == a.message_seq


def test_same_key_with_other_bytes_is_a_duplicate_whose_bytes_are_kept(path: Path) -> None:
    with Journal(path) as journal:
        journal.append_wait(inbound(1))
        b = journal.append_wait(inbound(1, raw=b"MSH|changed"))
        stats = journal.stats()
    assert b.duplicate
    assert b.conflict
    assert stats.conflicting_resends == 1
    assert count(path, "SELECT count(*) FROM resends WHERE raw = ?", b"MSH|changed") == 1


def test_messages_without_a_key_are_never_deduplicated(path: Path) -> None:
    with Journal(path) as journal:
        a = journal.append_wait(inbound(1, key=None))
        b = journal.append_wait(inbound(1, key=None))
    assert not b.duplicate
    assert b.message_seq != a.message_seq


def test_rejected_message_is_kept_raw_with_its_reason_and_makes_no_input(path: Path) -> None:
    raw = b"MSH|^~\\&|SND|FAC|||||ORU^R42|7|P|2.6\rOBX|1||\xff"
    with Journal(path) as journal:
        appended = journal.append_wait(inbound(7, raw=raw, events=0))
        (stored,) = journal.messages(outcome="rejected")
        inputs = list(journal.inputs_after(0))
    assert appended.position is None
    assert stored.raw == raw
    assert stored.reason == "pump P-1 is not bound to a patient"
    assert inputs == []


def test_ticks_and_events_reach_on_commit_in_position_order(path: Path) -> None:
    gate = Gate()
    with Journal(path, on_commit=gate) as journal:
        journal.append_wait(inbound(1, events=2))
        journal.append_tick(2000.0)
        journal.append_wait(inbound(2))
        journal.append_tick(3000.0)
        logged = list(journal.inputs_after(0))
    assert [(i.position, i.kind) for i in gate.inputs] == [
        (1, "events"),
        (2, "tick"),
        (3, "events"),
        (4, "tick"),
    ]
    assert logged == gate.inputs
    assert [e.event_id for e in logged[0].events] == ["p1-0010", "p1-0011"]


def test_inputs_after_a_position_start_after_it(path: Path) -> None:
    with Journal(path) as journal:
        for n in range(5):
            journal.append_wait(inbound(n))
        assert [i.position for i in journal.inputs_after(3)] == [4, 5]


def test_events_read_back_equal_the_events_stored(path: Path) -> None:
    original = inbound(1, events=3)
    with Journal(path) as journal:
        journal.append_wait(original)
        (item,) = journal.inputs_after(0)
    assert item.events == original.events
    assert item.message_seq == 1


def test_patient_events_come_in_position_order_from_a_time(path: Path) -> None:
    with Journal(path) as journal:
        for n in (3, 1, 2):
            journal.append_wait(inbound(n, patient="p1"))
        journal.append_wait(inbound(4, patient="p2"))
        since = event(0, at_min=2).ts.timestamp()
        got = journal.patient_events("p1", since_ts=since)
    assert [(pos, e.event_id) for pos, e in got] == [(1, "p1-0030"), (3, "p1-0020")]


def test_cancelled_append_is_still_stored(path: Path) -> None:
    async def main(journal: Journal) -> None:
        task = asyncio.ensure_future(journal.append(inbound(1)))
        await asyncio.sleep(0)  # let it submit, then give up on the answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with Journal(path) as journal:
        run_async(main(journal))
    assert count(path, "SELECT count(*) FROM messages") == 1


def test_write_after_close_is_refused(path: Path) -> None:
    journal = Journal(path)
    journal.close()
    with pytest.raises(JournalClosedError):
        journal.append_wait(inbound(1))
    journal.close()  # twice is fine


def test_file_that_is_not_a_journal_is_refused(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE other (x)")
    with pytest.raises(JournalFormatError, match="not a pumpguard journal"):
        Journal(path)


def test_journal_of_another_schema_version_is_refused(path: Path) -> None:
    Journal(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(JournalFormatError, match="schema version 99"):
        Journal(path)


def test_failing_consumer_keeps_the_batch_and_stops_further_writes(path: Path) -> None:
    def consumer(inputs: object) -> None:
        raise RuntimeError("engine broke")

    with Journal(path, on_commit=consumer) as journal:
        assert journal.append_wait(inbound(1)).message_seq == 1  # durable, so acknowledged
        with pytest.raises(JournalError, match="engine consumer failed"):
            journal.append_wait(inbound(2))
    assert count(path, "SELECT count(*) FROM messages") == 1


def test_blocking_call_from_on_commit_is_refused_not_deadlocked(path: Path) -> None:
    errors: list[Exception] = []
    holder: list[Journal] = []

    def consumer(inputs: object) -> None:
        try:
            holder[0].append_tick(1.0)
        except JournalError as exc:
            errors.append(exc)

    with Journal(path, on_commit=consumer) as journal:
        holder.append(journal)
        journal.append_wait(inbound(1))
    assert len(errors) == 1
    assert "would wait for itself" in str(errors[0])


def test_one_bad_write_fails_alone_in_its_batch(path: Path) -> None:
    gate = Gate()
    broken = Inbound(None, "x", b"MSH", 1.0, None, (), "warned", None)  # type: ignore[arg-type]
    with Journal(path, on_commit=gate) as journal:
        gate.hold()
        journal.submit(inbound(0))
        assert gate.entered.wait(10)
        before = journal.commits
        good, bad, also_good = (journal.submit(m) for m in (inbound(1), broken, inbound(2)))
        gate.release.set()
        assert good.result(10).message_seq == 2
        with pytest.raises(JournalError, match="NOT NULL"):
            bad.result(10)
        assert also_good.result(10).message_seq == 3
        assert journal.commits - before == 1


def test_broken_log_stream_never_leaves_a_waiter_hanging(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenLog:
        def error(self, *args: object, **kw: object) -> None:
            raise ValueError("I/O operation on closed file")

    def consumer(inputs: object) -> None:
        raise RuntimeError("engine broke")

    monkeypatch.setattr("pumpguard.service.journal.log", BrokenLog())
    with Journal(path, on_commit=consumer) as journal:
        assert journal.submit(inbound(1)).result(10).message_seq == 1
        with pytest.raises(JournalError, match="engine consumer failed"):
            journal.submit(inbound(2))


def test_engine_outputs_in_a_batch_do_not_hold_the_next_commit_for_a_listener(path: Path) -> None:
    gate = Gate()

    async def main(journal: Journal) -> float:
        gate.hold()
        journal.submit(inbound(100))
        assert await asyncio.to_thread(gate.entered.wait, 10)
        # Queued behind the held batch, so committed together: one listener, one tick.
        first = asyncio.ensure_future(journal.append(inbound(1)))
        await asyncio.sleep(0)
        tick = journal.submit_tick(5000.0)
        gate.release.set()
        await first
        await asyncio.wrap_future(tick)
        started = time.monotonic()
        await journal.append(inbound(2))  # the only listener: nobody else is coming back
        return time.monotonic() - started

    with Journal(path, on_commit=gate, commit_delay_s=5.0) as journal:
        took = run_async(main(journal))
    assert took < 2.5  # counting the tick as a listener made this wait the whole 5 s


def test_async_append_of_a_bad_write_hears_why_and_the_others_are_stored(path: Path) -> None:
    broken = Inbound(None, "x", b"MSH", 1.0, None, (), "warned", None)  # type: ignore[arg-type]

    async def main(journal: Journal) -> list[object]:
        return await asyncio.gather(
            journal.append(inbound(1)), journal.append(broken), return_exceptions=True
        )

    with Journal(path) as journal:
        good, bad = run_async(main(journal))
    assert not isinstance(good, BaseException)
    assert isinstance(bad, JournalError)
    assert "NOT NULL" in str(bad)
    assert count(path, "SELECT count(*) FROM messages") == 1


def test_async_append_to_a_closed_journal_is_refused(path: Path) -> None:
    journal = Journal(path)
    journal.close()
    with pytest.raises(JournalClosedError):
        run_async(journal.append(inbound(1)))
