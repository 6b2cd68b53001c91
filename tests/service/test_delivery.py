"""Outbox workers: order, retries with jittered back-off, dead letters, isolation, stop.

Every test runs on looptime's fake loop clock: back-off of minutes takes no real time.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from pathlib import Path

import pytest
from delivery_fakes import (
    BatchingSink,
    DeadLetterOutbox,
    FakeOutbox,
    LoopClock,
    ScriptedSink,
    make_finding,
    make_withdrawal,
)
from pumpguard.adapters.transports import (
    Deliverable,
    JsonlFileTransport,
    SinkUnavailable,
    read_deduplicated,
)
from pumpguard.engine.findings import Finding, Withdrawal
from pumpguard.service.delivery import DEAD_LETTER_AT, Deliverer, backoff_delay

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def deliverer(outbox: FakeOutbox, sinks: dict[str, ScriptedSink], **kw: object) -> Deliverer:
    options: dict[str, object] = {"rng": random.Random(7), "poll_s": 5.0, **kw}
    return Deliverer(outbox, sinks, LoopClock(), **options)  # type: ignore[arg-type]


async def until(cond: object, *, limit_s: float = 3600.0, step_s: float = 0.5) -> None:
    """Advance (fake) loop time until ``cond()`` holds; fail after ``limit_s``."""
    assert callable(cond)
    for _ in range(int(limit_s / step_s)):
        if cond():
            return
        await asyncio.sleep(step_s)
    pytest.fail(f"condition not met within {limit_s} s of loop time")


async def drained(d: Deliverer, outbox: FakeOutbox, sink: str = "a", **kw: float) -> None:
    """Start the workers, let them run until ``sink``'s outbox is empty, stop them."""
    await d.start()
    await until(lambda: not outbox.pending(sink), **kw)
    await d.stop()


def queued(count: int, sink: str = "a") -> tuple[FakeOutbox, list[Finding]]:
    """An outbox holding ``count`` findings for ``sink``, and the findings."""
    outbox = FakeOutbox()
    findings = [make_finding(n) for n in range(count)]
    for f in findings:
        outbox.enqueue(sink, f)
    return outbox, findings


async def test_every_item_is_delivered_in_order_and_marked_delivered() -> None:
    outbox, findings = queued(5)
    sink = ScriptedSink(LoopClock())
    d = deliverer(outbox, {"a": sink})
    await drained(d, outbox)
    assert sink.received == [f.finding_id for f in findings]
    assert d.stats()["a"].delivered == 5
    assert sink.closed


async def test_backoff_grows_exponentially_with_seeded_full_jitter() -> None:
    outbox = FakeOutbox()
    outbox.enqueue("a", make_finding(1))
    clock = LoopClock()
    sink = ScriptedSink(clock, down=True)
    d = deliverer(outbox, {"a": sink}, base_delay_s=1.0, max_delay_s=64.0, rng=random.Random(42))
    await d.start()
    await until(lambda: len(outbox.retries) >= 10, limit_s=10_000)
    await d.stop()
    times = [t for t, _ in sink.attempts]
    delays = [next_at - at for (_, next_at, _), at in zip(outbox.retries, times, strict=False)]
    expected_rng = random.Random(42)
    expected = [expected_rng.uniform(0, min(64.0, 2.0**k)) for k in range(len(delays))]
    assert delays == pytest.approx(expected)
    ceilings = [min(64.0, 2.0**k) for k in range(len(delays))]
    assert all(0 <= dly <= c for dly, c in zip(delays, ceilings, strict=True))
    assert len({round(x, 6) for x in delays}) == len(delays)  # jittered, not a fixed ladder
    # the next attempt happens when the back-off says, not before
    for (_, next_at, _), later in zip(outbox.retries, times[1:], strict=False):
        assert later == pytest.approx(next_at, abs=1e-6) or later > next_at


async def test_backoff_ceiling_doubles_per_attempt_up_to_the_maximum() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    ceilings = [backoff_delay(k, Top(), 1.0, 300.0) for k in range(12)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert backoff_delay(10_000, Top(), 1.0, 300.0) == 300.0


async def test_down_sink_does_not_delay_another_sink() -> None:
    outbox = FakeOutbox()
    clock = LoopClock()
    for n in range(3):
        outbox.enqueue("dead", make_finding(n))
        outbox.enqueue("live", make_finding(n))
    hanging = ScriptedSink(clock, hang=True)
    live = ScriptedSink(clock)
    d = deliverer(outbox, {"dead": hanging, "live": live}, delivery_timeout_s=30.0)
    start = clock.now()
    await d.start()
    await until(lambda: not outbox.pending("live"), step_s=0.01)
    assert clock.now() - start < 1.0  # the other sink waited for nothing
    assert len(live.received) == 3
    assert hanging.received == []
    await d.stop(timeout_s=0.1)


async def test_slow_delivery_times_out_and_is_retried_later() -> None:
    outbox = FakeOutbox()
    item = outbox.enqueue("a", make_finding(1))
    clock = LoopClock()
    sink = ScriptedSink(clock, hang=True)
    d = deliverer(outbox, {"a": sink}, delivery_timeout_s=10.0)
    await d.start()
    await until(lambda: outbox.retries)
    await d.stop(timeout_s=0.1)
    assert outbox.retries[0][0] == item
    assert "no answer within 10 s" in outbox.retries[0][2]
    assert outbox.items[item].delivered_at is None


async def test_refused_item_is_dead_lettered_and_the_next_goes_on() -> None:
    outbox = DeadLetterOutbox()
    bad, good = make_finding(1), make_finding(2)
    bad_id = outbox.enqueue("a", bad)
    outbox.enqueue("a", good)
    sink = ScriptedSink(LoopClock(), refuse={bad.finding_id})
    d = deliverer(outbox, {"a": sink})
    await d.start()
    await until(lambda: not outbox.pending("a"))
    await d.stop()
    assert outbox.items[bad_id].dead
    assert "dead letter: HTTP 400" in (outbox.items[bad_id].last_error or "")
    assert sink.received == [good.finding_id]
    stats = d.stats()["a"]
    assert (stats.dead, stats.delivered, stats.retries) == (1, 1, 0)
    assert stats.last_error is not None
    assert "HTTP 400" in stats.last_error


async def test_dead_letter_without_mark_dead_is_never_due_again() -> None:
    outbox = FakeOutbox()
    bad = make_finding(1)
    bad_id = outbox.enqueue("a", bad)
    sink = ScriptedSink(LoopClock(), refuse={bad.finding_id})
    d = deliverer(outbox, {"a": sink})
    await d.start()
    await until(lambda: outbox.retries)
    await asyncio.sleep(3600)
    await d.stop()
    assert outbox.items[bad_id].next_at == DEAD_LETTER_AT
    assert len(sink.attempts) == 1


async def test_unreadable_outbox_body_is_dead_lettered_with_the_reason() -> None:
    outbox = DeadLetterOutbox()
    item = outbox.enqueue_body("a", "finding", "F-x", "{not json")
    d = deliverer(outbox, {"a": ScriptedSink(LoopClock())})
    await d.start()
    await until(lambda: outbox.items[item].dead)
    await d.stop()
    assert "not a finding or a withdrawal" in (outbox.items[item].last_error or "")


async def test_retry_after_from_the_sink_lengthens_the_backoff() -> None:
    outbox = FakeOutbox()
    outbox.enqueue("a", make_finding(1))
    clock = LoopClock()
    sink = ScriptedSink(clock, down=True, retry_after_s=120.0)
    d = deliverer(outbox, {"a": sink}, base_delay_s=1.0)
    await d.start()
    await until(lambda: outbox.retries)
    await d.stop()
    (_, next_at, _), (at, _) = outbox.retries[0], sink.attempts[0]
    assert next_at - at == pytest.approx(120.0)


async def test_a_backing_off_sink_holds_its_later_items_so_an_alarm_ends_after_it_starts() -> None:
    outbox = FakeOutbox()
    finding = make_finding(1)
    withdrawal = make_withdrawal(finding)
    outbox.enqueue("acm", finding)
    outbox.enqueue("acm", withdrawal)
    sink = ScriptedSink(LoopClock(), fail={finding.finding_id: 3})
    d = deliverer(outbox, {"acm": sink})
    await d.start()
    await until(lambda: not outbox.pending("acm"), limit_s=10_000)
    await d.stop()
    assert [i for _, i in sink.attempts] == [finding.finding_id] * 4 + [withdrawal.withdrawal_id]
    assert sink.received == [finding.finding_id, withdrawal.withdrawal_id]
    assert d.stats()["acm"].retries == 3


async def test_wake_starts_delivery_before_the_next_poll() -> None:
    outbox = FakeOutbox()
    clock = LoopClock()
    sink = ScriptedSink(clock)
    d = deliverer(outbox, {"a": sink}, poll_s=600.0)
    await d.start()
    await asyncio.sleep(1)
    outbox.enqueue("a", make_finding(1))
    d.wake()
    await until(lambda: sink.received, step_s=0.01, limit_s=5)
    assert sink.attempts[0][0] - clock.start < 2.0
    await d.stop()


async def test_wake_from_another_thread_is_safe() -> None:
    outbox = FakeOutbox()
    sink = ScriptedSink(LoopClock())
    d = deliverer(outbox, {"a": sink}, poll_s=600.0)
    await d.start()
    await asyncio.sleep(1)
    outbox.enqueue("a", make_finding(1))
    t = threading.Thread(target=d.wake)
    t.start()
    t.join()
    await until(lambda: sink.received, step_s=0.01, limit_s=5)
    await d.stop()


async def test_wake_does_not_cut_a_backoff_short() -> None:
    outbox = FakeOutbox()
    first = make_finding(1)
    outbox.enqueue("a", first)
    clock = LoopClock()
    sink = ScriptedSink(clock, fail={first.finding_id: 1})
    d = deliverer(outbox, {"a": sink}, rng=random.Random(3), base_delay_s=100.0, max_delay_s=100.0)
    await d.start()
    await until(lambda: outbox.retries, step_s=0.01)
    next_at = outbox.retries[0][1]
    outbox.enqueue("a", make_finding(2))
    d.wake()
    await until(lambda: len(sink.received) == 2, limit_s=200)
    await d.stop()
    assert sink.attempts[1][0] >= next_at - 1e-6


async def test_stop_lets_an_in_flight_delivery_finish_and_marks_it() -> None:
    outbox = FakeOutbox()
    item = outbox.enqueue("a", make_finding(1))
    sink = ScriptedSink(LoopClock(), delay_s=2.0)
    d = deliverer(outbox, {"a": sink})
    await d.start()
    await until(lambda: sink.attempts, step_s=0.01)
    await d.stop(timeout_s=10.0)
    assert outbox.items[item].delivered_at is not None


async def test_stop_gives_up_on_a_hung_delivery_after_its_bound() -> None:
    outbox = FakeOutbox()
    item = outbox.enqueue("a", make_finding(1))
    clock = LoopClock()
    sink = ScriptedSink(clock, hang=True)
    d = deliverer(outbox, {"a": sink}, delivery_timeout_s=1000.0)
    await d.start()
    await until(lambda: sink.attempts, step_s=0.01)
    before = clock.now()
    await d.stop(timeout_s=3.0)
    assert clock.now() - before == pytest.approx(3.0, abs=0.1)
    assert outbox.items[item].delivered_at is None  # still pending: sent again after restart


async def test_journal_failure_is_reported_and_the_worker_carries_on() -> None:
    outbox = FakeOutbox(fail_next_due=1)
    outbox.enqueue("a", make_finding(1))
    sink = ScriptedSink(LoopClock())
    d = deliverer(outbox, {"a": sink})
    await d.start()
    await until(lambda: not outbox.pending("a"))
    await d.stop()
    last = d.stats()["a"].last_error or ""
    assert "database is locked" in last
    assert sink.received


async def test_lost_mark_means_delivered_again_and_the_receiver_dedupes_by_id() -> None:
    outbox = FakeOutbox(fail_next_mark_delivered=1)
    f = make_finding(1)
    outbox.enqueue("a", f)
    sink = ScriptedSink(LoopClock())
    d = deliverer(outbox, {"a": sink})
    await d.start()
    await until(lambda: not outbox.pending("a"))
    await d.stop()
    assert sink.received == [f.finding_id, f.finding_id]  # at least once
    assert list(dict.fromkeys(sink.received)) == [f.finding_id]


async def test_flaky_sinks_get_every_output_at_least_once_and_no_id_twice_after_dedupe() -> None:
    """Done-when: every finding reached a test sink; after dedupe no id is seen twice."""
    outbox = FakeOutbox()
    rng = random.Random(11)
    clock = LoopClock()
    records = []
    for n in range(60):
        f = make_finding(n, patient_id=f"P-{n % 4}")
        records.append(f)
        if n % 7 == 0:
            records.append(make_withdrawal(f))
    sinks = {
        "steady": ScriptedSink(clock),
        "flaky": ScriptedSink(clock, fail={r.finding_id: rng.randint(0, 3) for r in records[::2]}),
    }
    for r in records:
        for name in sinks:
            outbox.enqueue(name, r)
    outbox.fail_next_mark_delivered = 2
    d = deliverer(outbox, sinks, base_delay_s=0.5, max_delay_s=30.0, batch=8)
    await d.start()
    await until(lambda: not any(outbox.pending(s) for s in sinks), limit_s=100_000)
    await d.stop()
    ids = [r.withdrawal_id if hasattr(r, "withdrawal_id") else r.finding_id for r in records]
    for sink in sinks.values():
        assert set(sink.received) == set(ids)
        assert list(dict.fromkeys(sink.received)) == ids  # deduped, still in outbox order


async def test_a_clock_without_time_yet_delivers_nothing_until_it_has_one() -> None:
    class EventClock:
        now_s = float("-inf")

        def now(self) -> float:
            return self.now_s

    outbox = FakeOutbox()
    outbox.enqueue("a", make_finding(1), at=50.0)
    sink = ScriptedSink(LoopClock())
    clock = EventClock()
    d = Deliverer(outbox, {"a": sink}, clock, rng=random.Random(1), poll_s=1.0)
    await d.start()
    await asyncio.sleep(10)
    assert sink.attempts == []
    clock.now_s = 60.0
    await until(lambda: sink.received)
    await d.stop()
    assert outbox.items[1].delivered_at == 60.0


class LosesAcks:
    """A JSONL file whose writer sometimes fails after the line is down (an ACK lost)."""

    def __init__(self, path: Path, rng: random.Random) -> None:
        self.file = JsonlFileTransport(path)
        self.rng = rng

    async def deliver(self, item: Deliverable) -> None:
        if self.rng.random() < 0.2:
            raise SinkUnavailable("refused before writing")
        await self.file.deliver(item)
        if self.rng.random() < 0.2:
            raise SinkUnavailable("written, but the answer was lost")

    async def aclose(self) -> None:
        await self.file.aclose()


async def test_jsonl_sink_holds_every_output_once_after_dedupe(tmp_path: Path) -> None:
    outbox = FakeOutbox()
    records: list[Finding | Withdrawal] = []
    for n in range(40):
        f = make_finding(n)
        records += [f, make_withdrawal(f)] if n % 5 == 0 else [f]
    for r in records:
        outbox.enqueue("file", r)
    path = tmp_path / "findings.jsonl"
    sink = LosesAcks(path, random.Random(5))
    d = Deliverer(outbox, {"file": sink}, LoopClock(), rng=random.Random(2), base_delay_s=0.5)
    await d.start()
    await until(lambda: not outbox.pending("file"), limit_s=100_000)
    await d.stop()
    read = read_deduplicated(path)
    assert [r.id for r in read.records] == [Deliverable.of(r).id for r in records]
    assert read.duplicates > 0  # the lost answers really did cause re-sends
    assert read.bad_lines == []


async def test_each_outcome_is_reported_to_the_metrics_hook() -> None:
    outbox = DeadLetterOutbox()
    ok, flaky, bad = make_finding(1), make_finding(2), make_finding(3)
    for f in (ok, flaky, bad):
        outbox.enqueue("a", f)
    seen: list[tuple[str, str]] = []
    sink = ScriptedSink(LoopClock(), fail={flaky.finding_id: 1}, refuse={bad.finding_id})
    d = deliverer(outbox, {"a": sink}, on_outcome=lambda s, o: seen.append((s, o)))
    await d.start()
    await until(lambda: not outbox.pending("a"))
    await d.stop()
    assert seen == [("a", "delivered"), ("a", "retry"), ("a", "delivered"), ("a", "dead")]


async def test_a_batch_sink_takes_a_burst_in_one_call_and_each_item_is_marked_delivered() -> None:
    outbox, findings = queued(6)
    sink = BatchingSink(LoopClock())
    d = deliverer(outbox, {"a": sink})
    await drained(d, outbox)
    assert sink.batches == [[f.finding_id for f in findings]]
    assert sink.attempts == []  # no item went alone
    assert d.stats()["a"].delivered == 6


async def test_a_failed_batch_goes_item_by_item_each_with_its_own_retry_or_dead_letter() -> None:
    outbox = DeadLetterOutbox()
    ok, flaky, bad = make_finding(1), make_finding(2), make_finding(3)
    for f in (ok, flaky, bad):
        outbox.enqueue("a", f)
    sink = BatchingSink(
        LoopClock(), fail={flaky.finding_id: 1}, refuse={bad.finding_id}, batch_fails=True
    )
    seen: list[str] = []
    d = deliverer(outbox, {"a": sink}, on_outcome=lambda _s, o: seen.append(o))
    await drained(d, outbox)
    assert sink.batches[0] == [ok.finding_id, flaky.finding_id, bad.finding_id]
    assert sink.received == [ok.finding_id, flaky.finding_id]
    assert seen == ["delivered", "retry", "delivered", "dead"]


async def _trickle(d: Deliverer, outbox: FakeOutbox, count: int, every_s: float) -> None:
    for n in range(count):
        outbox.enqueue("a", make_finding(n))
        d.wake()
        await asyncio.sleep(every_s)


async def test_linger_gathers_findings_that_trickle_in_into_few_delivery_rounds() -> None:
    outbox = FakeOutbox()
    sink = BatchingSink(LoopClock())
    d = deliverer(outbox, {"a": sink}, linger_s=0.02)
    await d.start()
    await _trickle(d, outbox, 20, 0.005)
    await drained(d, outbox, step_s=0.01)
    rounds = len(sink.batches) + len(sink.attempts)
    assert len(sink.received) == 20
    assert rounds <= 6  # 20 findings over 0.1 s, a round at most every 0.02 s


async def test_without_linger_each_trickling_finding_is_its_own_round() -> None:
    outbox = FakeOutbox()
    sink = BatchingSink(LoopClock())
    d = deliverer(outbox, {"a": sink})
    await d.start()
    await _trickle(d, outbox, 20, 0.005)
    await drained(d, outbox, step_s=0.01)
    assert len(sink.attempts) == 20
    assert sink.batches == []


async def test_jsonl_batch_is_one_append_and_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd))[1])
    path = tmp_path / "findings.jsonl"
    records = [Deliverable.of(make_finding(n)) for n in range(5)]
    transport = JsonlFileTransport(path)
    await transport.deliver_batch(records)
    read = read_deduplicated(path)
    assert [r.id for r in read.records] == [r.id for r in records]
    assert len(syncs) == 1
