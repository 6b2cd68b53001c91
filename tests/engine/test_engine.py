"""The engine: isolation, event time, deadlines, errors as alerts, bounded state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pumpguard.engine.clock import LiveClock, ManualClock
from pumpguard.engine.core import ENGINE_ERROR_CODE, Engine
from pumpguard.engine.deadlines import DeadlineQueue
from pumpguard.engine.errors import RuleEvaluationError
from pumpguard.engine.pack import load_pack
from pumpguard.rules import default_pack


def test_two_engines_with_different_packs_are_independent(tmp_path: Path, stream):
    """Same process, same rule ids, different parameters: independent results."""
    strict = tmp_path / "strict"
    shutil.copytree(default_pack(), strict)
    text = (
        (strict / "pack.yaml")
        .read_text()
        .replace("reinit_threshold_h: {value: 4,", "reinit_threshold_h: {value: 2,")
    )
    (strict / "pack.yaml").write_text(text)
    a, b = Engine(load_pack(default_pack())), Engine(load_pack(strict))
    s = stream().registered().inpatient().start(0).add("encounter.discharged", 300)
    s.stop(400).resume(403)
    for e in s.events:
        a.submit(e)
        b.submit(e)
    end = s.events[-1].ts.timestamp() + 7200
    assert [f.code for f in a.advance(end)] == []
    assert [f.code for f in b.advance(end)] == ["REINITIATION_UNSUPERVISED"]


def test_engine_never_reads_the_wall_clock(stream, run, monkeypatch):
    """Findings depend on event time only: a frozen or broken wall clock changes nothing."""
    import time

    s = stream().registered().start(0)
    before = run(s.events)
    monkeypatch.setattr(time, "time", lambda: 0.0)
    assert run(s.events) == before


def test_deadline_fires_only_when_clock_passes(pack, stream):
    clock = ManualClock(mode="live")
    engine = Engine(pack, clock)
    s = stream().registered().inpatient().start(0).add("encounter.discharged", 300)
    s.stop(400).resume(405)
    for e in s.events:
        engine.submit(e)
    restart = s.events[-1].ts.timestamp()
    assert engine.next_due() <= restart + 3600
    clock.set(restart + 3599)
    assert "REINITIATION_UNSUPERVISED" not in [f.code for f in engine.advance()]
    clock.set(restart + 3600)
    assert [f.code for f in engine.advance()] == ["REINITIATION_UNSUPERVISED"]


def test_large_condition_is_split_and_still_decided_by_durable_rules():
    """A condition over durable-rules' size limit runs as parts, and terminates."""
    from pumpguard.engine.host import RuleHost, logic_nodes

    ors = [
        {"$or": [{"$nex": {f"state.a{i}": 1}}, {"$gt": {f"state.a{i}": 1.0}}]} for i in range(20)
    ]
    cond = {"$and": ors}
    assert logic_nodes(cond) > 12
    host = RuleHost([("BIG", cond)])
    assert len(host.definitions) > 1
    msg = {"sid": "0", "type": "t", "state": {"a3": 5.0}}
    assert host.evaluate(["BIG"], msg) == ["BIG"]
    msg = {"sid": "0", "type": "t", "state": {"a3": 0.5}}
    assert host.evaluate(["BIG"], msg) == []


def test_deadline_queue_orders_by_time_then_patient_then_sequence():
    q = DeadlineQueue()
    q.open("b", "x", 10.0, opened_by="R", carry={}, evidence=())
    q.open("a", "x", 10.0, opened_by="R", carry={}, evidence=())
    q.open("a", "y", 5.0, opened_by="R", carry={}, evidence=())
    q.open("c", "x", 20.0, opened_by="R", carry={}, evidence=())
    q.close("c", "x")
    fired = [(d.patient_id, d.name) for d in q.pop_due(10.0, inclusive=True)]
    assert fired == [("a", "y"), ("a", "x"), ("b", "x")]
    assert q.next_due() is None


def test_deadline_at_exactly_until_waits_for_events_at_that_instant():
    q = DeadlineQueue()
    q.open("a", "x", 10.0, opened_by="R", carry={}, evidence=())
    assert list(q.pop_due(10.0, inclusive=False)) == []
    assert len(list(q.pop_due(10.0, inclusive=True))) == 1


def test_live_clock_uses_monotonic_time_after_the_anchor():
    ticks = iter([100.0, 105.5])
    clock = LiveClock(wall=lambda: 1_000_000.0, monotonic=lambda: next(ticks))
    assert clock.now() == 1_000_005.5


def test_late_event_is_evaluated_and_marked_late(pack, stream):
    """Live, an event older than the clock is still evaluated, and says it came late."""
    engine = Engine(pack)
    s = stream().registered().inpatient().start(0)
    for e in s.events:
        engine.submit(e)
    engine.advance(s.events[-1].ts.timestamp() + 3600 * 48)
    late = stream().add("pump.flush", 10, volume_ml=2).events[0]
    late = late.model_copy(update={"patient_id": "p1", "pump_id": "PUMP-1"})
    [f] = engine.submit(late)
    assert f.late is True


def test_more_patients_than_durable_rules_sids(pack, stream):
    """The 1024-sid cap of durable-rules does not bite: 1,500 patients each get a finding."""
    engine = Engine(pack)
    found = 0
    for i in range(1500):
        s = stream(f"pt{i:04d}").registered().start(0)
        for e in s.events:
            found += sum(f.code == "HOSPITALIZATION_REQUIRED" for f in engine.submit(e))
    # each breach is judged at the end of its second: the clock must pass it
    found += sum(f.code == "HOSPITALIZATION_REQUIRED" for f in engine.advance(3600.0 * 1e6))
    assert found == 1500
    assert len(engine.patients) == 1500


def test_failed_rule_evaluation_becomes_an_alert(pack, stream, monkeypatch):
    """A rule durable-rules cannot evaluate raises a critical finding, never a log line."""
    engine = Engine(pack)

    def broken(rule_ids, message, **_options):
        raise RuleEvaluationError("boom", rule_id=next(iter(rule_ids)))

    s = stream().registered().inpatient().start(0).add("pump.flush", 1, volume_ml=2)
    for e in s.events[:-1]:
        engine.submit(e)
    monkeypatch.setattr(engine.host, "evaluate", broken)
    found = engine.submit(s.events[-1])
    assert ENGINE_ERROR_CODE in [f.code for f in found]
    assert engine.errors
    assert engine.errors[0].patient_id == "p1"


def test_failed_rule_evaluation_can_raise(pack, stream, monkeypatch):
    engine = Engine(pack, on_error="raise")

    def broken(rule_ids, message, **_options):
        raise RuleEvaluationError("boom", rule_id="BLN-NOFLUSH-01")

    s = stream().registered().inpatient().start(0).add("pump.flush", 1, volume_ml=2)
    for e in s.events[:-1]:
        engine.submit(e)
    monkeypatch.setattr(engine.host, "evaluate", broken)
    with pytest.raises(RuleEvaluationError):
        engine.submit(s.events[-1])


def test_patient_state_does_not_grow_with_events(pack, stream):
    """Weeks of bags, premedication and pump events leave a bounded patient record."""
    engine = Engine(pack)
    s = stream().registered().inpatient()
    for day in range(200):
        t = day * 24.0
        s.add(
            "bag.dispensed",
            t,
            bag_id=f"B{day}",
            drug="blinatumomab",
            dose_mcg_day=28,
            duration_h=24,
            rate_ml_h=10,
            volume_ml=240,
        )
        s.add("medication.administered", t + 0.1, drug="dexamethasone", dose_mg=20)
        s.start(t + 0.5, bag_id=f"B{day}").add("pump.infusion_completed", t + 23)
    for e in s.events:
        engine.submit(e)
    p = engine.patients["p1"]
    assert len(p.bags) <= 32
    assert len(p.meds) <= 2
    assert len(p.channels) == 1
    assert engine.open_deadlines == 0


def test_no_fact_stays_in_durable_rules_after_a_course(pack):
    """Every message is asserted as a fact and retracted: the network ends empty."""
    from pumpguard.adapters.jsonl import JsonlSource
    from pumpguard.cli import bundled_demo_course

    engine = Engine(pack)
    for e in JsonlSource(bundled_demo_course()):
        engine.submit(e)
    assert engine.host.facts_left() == 0


def test_live_mode_warns_before_an_interruption_reaches_four_hours(pack, stream):
    """Live only: 3.5 h into an interruption the engine says so (info), before it is too late."""
    clock = ManualClock(mode="live")
    engine = Engine(pack, clock)
    s = stream().registered().inpatient().start(0).stop(10)
    for e in s.events:
        engine.submit(e)
    stop = s.events[-1].ts.timestamp()
    clock.set(stop + 3.5 * 3600 - 1)
    assert engine.advance() == []
    clock.set(stop + 3.5 * 3600)
    [warning] = engine.advance()
    assert (warning.code, warning.severity.value) == ("INTERRUPTION_WARNING", "info")


def test_replay_mode_has_no_live_warning(pack, stream):
    engine = Engine(pack)
    s = stream().registered().inpatient().start(0).stop(10)
    for e in s.events:
        engine.submit(e)
    end = s.events[-1].ts.timestamp() + 5 * 3600
    assert "INTERRUPTION_WARNING" not in [f.code for f in engine.advance(end)]


def test_resuming_in_time_cancels_the_live_warning(pack, stream):
    clock = ManualClock(mode="live")
    engine = Engine(pack, clock)
    s = stream().registered().inpatient().start(0).stop(10).resume(12)
    for e in s.events:
        engine.submit(e)
    clock.set(s.events[-1].ts.timestamp() + 5 * 3600)
    assert "INTERRUPTION_WARNING" not in [f.code for f in engine.advance()]
