"""The live core: in order it is the replay; late data is re-evaluated, withdrawn, re-raised."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pumpguard.engine.core import Engine
from pumpguard.engine.events import Event, event_adapter
from pumpguard.engine.findings import Finding
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.replay import drive, time_ordered
from pumpguard.service.live import LiveCore
from pumpguard.service.simulate import MemoryHistory, SimInput, simulate
from pumpguard.simulations.arrival import Arrival, ArrivalModel, arrivals
from pumpguard.simulations.montecarlo import generate_population

LIVE_ONLY = {"INTERRUPTION_WARNING"}
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _ev(n: int, type_: str, at_h: float, **fields: Any) -> Event:
    data: dict[str, Any] = {
        "event_id": f"e{n}",
        "type": type_,
        "ts": (T0 + timedelta(hours=at_h)).isoformat(),
        "patient_id": "p1",
    }
    if type_.startswith("pump."):
        data["pump_id"] = "PUMP-1"
    data.update(fields)
    return event_adapter.validate_json(json.dumps(data))


def _restart_after_5h() -> list[Event]:
    return [
        _ev(1, "patient.registered", -2, weight_kg=70, indication="relapsed_refractory"),
        _ev(2, "encounter.admitted", -1, setting="inpatient"),
        _ev(3, "cycle.ordered", -0.5, cycle=1, phase="induction", dose_mcg_day=9),
        _ev(4, "medication.administered", -0.5, drug="dexamethasone", dose_mg=20),
        _ev(5, "pump.infusion_started", 0, drug="blinatumomab", rate_ml_h=10, dose_mcg_day=9),
        _ev(6, "encounter.discharged", 240),
        _ev(7, "pump.infusion_stopped", 250, reason="occlusion"),
        _ev(8, "medication.administered", 254.5, drug="dexamethasone", dose_mg=20),
        _ev(9, "pump.infusion_resumed", 255),
    ]


def _replay(pack: CompiledPack, events: list[Event], end: float) -> list[Finding]:
    return list(drive(Engine(pack), time_ordered(events), end=end))


def _ids(findings: list[Finding]) -> list[str]:
    return sorted(f.finding_id for f in findings if f.code not in LIVE_ONLY)


def _on_time(events: list[Event], delay_s: float = 1.0) -> list[Arrival]:
    return [Arrival(e.ts.timestamp() + delay_s, e) for e in time_ordered(events)]


def test_a_restart_unsupervised_is_raised_at_its_due_time_with_no_further_event(
    pack: CompiledPack,
) -> None:
    events = _restart_after_5h()
    end = (T0 + timedelta(hours=258)).timestamp()
    run = simulate(pack, _on_time(events), end=end)
    hits = [f for f in run.raised if f.code == "REINITIATION_UNSUPERVISED"]
    assert [f.ts for f in hits] == [T0 + timedelta(hours=256)]
    tick = next(i for i in run.inputs if i.kind == "tick" and i.at == hits[0].ts.timestamp())
    assert tick.events == ()


def test_an_interruption_warning_comes_before_the_4_hour_mark_live(pack: CompiledPack) -> None:
    events = _restart_after_5h()
    run = simulate(pack, _on_time(events), end=(T0 + timedelta(hours=258)).timestamp())
    warn = [f for f in run.raised if f.code == "INTERRUPTION_WARNING"]
    assert len(warn) == 1
    assert T0 + timedelta(hours=250) < warn[0].ts < T0 + timedelta(hours=254)


def test_in_arrival_order_the_live_findings_are_the_replays(pack: CompiledPack) -> None:
    events = _restart_after_5h()
    end = (T0 + timedelta(hours=300)).timestamp()
    run = simulate(pack, _on_time(events), end=end)
    assert run.withdrawals == []
    assert run.reevaluations == 0
    assert _ids(run.active) == _ids(_replay(pack, events, end))


def test_supervision_documented_late_withdraws_the_unsupervised_restart(
    pack: CompiledPack,
) -> None:
    events = _restart_after_5h()
    late = _ev(10, "nursing.supervision", 255.2, actor_role="nurse")
    end = (T0 + timedelta(hours=259)).timestamp()
    arrived = [*_on_time(events), Arrival((T0 + timedelta(hours=257)).timestamp(), late)]
    run = simulate(pack, arrived, end=end)
    raised = [f for f in run.raised if f.code == "REINITIATION_UNSUPERVISED"]
    assert len(raised) == 1
    assert [w.withdraws for w in run.withdrawals] == [raised[0].finding_id]
    assert run.withdrawals[0].evidence == ["e10"]
    assert "REINITIATION_UNSUPERVISED" not in {f.code for f in run.active}
    assert _ids(run.active) == _ids(_replay(pack, [*events, late], end))


def test_a_stop_arriving_late_raises_what_it_proves_marked_late(pack: CompiledPack) -> None:
    events = _restart_after_5h()
    flush = _ev(11, "pump.flush", 100, volume_ml=5)
    end = (T0 + timedelta(hours=300)).timestamp()
    arrived = [*_on_time(events), Arrival((T0 + timedelta(hours=101)).timestamp(), flush)]
    arrived.sort(key=lambda a: a.at)
    run = simulate(pack, arrived, end=end)
    flushes = [f for f in run.raised if f.code == "LINE_FLUSH"]
    assert flushes
    assert all(f.late for f in flushes)
    assert _ids(run.active) == _ids(_replay(pack, [*events, flush], end))


def test_a_snapshot_restored_goes_on_with_the_same_outputs(pack: CompiledPack) -> None:
    events = _restart_after_5h()
    late = _ev(10, "nursing.supervision", 255.2, actor_role="nurse")
    arrived = [*_on_time(events), Arrival((T0 + timedelta(hours=257)).timestamp(), late)]
    whole = simulate(pack, arrived, end=(T0 + timedelta(hours=259)).timestamp())
    history = MemoryHistory()
    first = LiveCore(pack, history)
    cut = len(whole.inputs) // 2
    out1 = []
    for inp in whole.inputs[:cut]:
        history.add(inp.position, inp.events)
        out1.append(first.process(inp))
    second = LiveCore(pack, history)
    second.restore(first.snapshot())
    out2 = []
    for inp in whole.inputs[cut:]:
        history.add(inp.position, inp.events)
        out2.append(second.process(inp))
    got = [f.to_json() for o in out1 + out2 for f in o.findings]
    assert got == [f.to_json() for f in whole.raised]
    assert [w.to_json() for o in out2 for w in o.withdrawals] == [
        w.to_json() for w in whole.withdrawals
    ]


def test_an_input_already_covered_by_the_snapshot_is_not_evaluated_twice(
    pack: CompiledPack,
) -> None:
    core = LiveCore(pack, MemoryHistory())
    event = _restart_after_5h()[0]
    inp = SimInput(1, "events", event.ts.timestamp(), (event,))
    core.process(inp)
    assert core.process(inp).findings == ()
    assert core.position == 1


POPULATION = generate_population(12, 0.3, seed=7)
POP_EVENTS = [event_adapter.validate_json(line) for line in POPULATION.lines]


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 10_000))
def test_late_documentation_and_pump_bursts_converge_to_the_replay(
    pack: CompiledPack, seed: int
) -> None:
    model = ArrivalModel(seed=seed)
    arrived = arrivals(POP_EVENTS, model)
    end = max(a.at for a in arrived)
    run = simulate(pack, arrived, end=end)
    assert _ids(run.active) == _ids(_replay(pack, POP_EVENTS, end))
    withdrawn = run.withdrawn_ids
    kept = [f for f in run.raised if f.finding_id not in withdrawn or f in run.active]
    assert {f.finding_id for f in run.active} <= {f.finding_id for f in kept}


@pytest.mark.parametrize("delay_h", [0.5, 2.0])
def test_the_late_path_is_really_taken(pack: CompiledPack, delay_h: float) -> None:
    model = ArrivalModel(seed=1, doc_late_fraction=1.0, doc_delay_max_s=delay_h * 3600)
    run = simulate(pack, arrivals(POP_EVENTS, model))
    assert run.reevaluations > 0


def _other_patient_far_ahead(n: int, at_h: float) -> Event:
    e = _ev(n, "patient.registered", at_h, weight_kg=60, indication="relapsed_refractory")
    return e.model_copy(update={"patient_id": "p2", "event_id": f"p2-{n}"})


@pytest.mark.parametrize("next_h", [256.5, 270.0, 300.0])
def test_a_deadline_opened_overdue_fires_before_its_patients_next_event(
    pack: CompiledPack, next_h: float
) -> None:
    """Another patient took the engine's time days ahead, and no tick came between: the
    restart's 1 h supervision deadline (already overdue when opened) still fires before the
    patient's next event, with the patient's state at its due time, as in the replay."""
    course = _restart_after_5h()
    later = _ev(10, "pump.infusion_stopped", next_h, reason="user")
    ahead = _other_patient_far_ahead(11, 400)
    history = MemoryHistory()
    core = LiveCore(pack, history)
    order = [*course[:-1], ahead, course[-1], later]
    live: list[Finding] = []
    at = (T0 + timedelta(hours=400)).timestamp()  # every message received after them all
    for position, event in enumerate(order, start=1):
        history.add(position, (event,))
        live.extend(core.process(SimInput(position, "events", at, (event,))).findings)
    end = (T0 + timedelta(hours=next_h)).timestamp()
    replayed = _replay(pack, [*course, later, ahead], end=end)
    p1 = [f for f in replayed if f.patient_id == "p1" and f.code not in LIVE_ONLY]
    before_end = [f for f in live if f.patient_id == "p1" and f.ts.timestamp() < end]
    got = {f.finding_id: _same(f) for f in before_end if f.code not in LIVE_ONLY}
    want = {f.finding_id: _same(f) for f in p1 if f.ts.timestamp() < end}
    assert "REINITIATION_UNSUPERVISED" in {f["code"] for f in want.values()}
    assert got == want


def _same(f: Finding) -> dict[str, Any]:
    """A finding's content, less what says when and how it was delivered."""
    data = json.loads(f.to_json())
    return {k: v for k, v in data.items() if k not in ("late", "prev_sha256", "seq")}
