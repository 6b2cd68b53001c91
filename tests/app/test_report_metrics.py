"""The report's numbers on hand-made streams: denominators, compliance, weeks, control limits.

Findings come from the engine on the same events (never stubbed), so a
numerator is what a committee would see for that history.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pumpguard.report_metrics import DAY, HOUR, Params, Population, digest_events
from pumpguard.report_rates import compliance, patient_days_by_week, rates
from pumpguard.report_spc import p_chart, u_chart


def _label(s, bag: str, at_h: float, hours: int = 24, dose: float = 9) -> None:
    s.add(
        "bag.dispensed",
        at_h,
        bag_id=bag,
        drug="blinatumomab",
        dose_mcg_day=dose,
        duration_h=hours,
        rate_ml_h=10,
        volume_ml=240,
    )


@pytest.fixture(name="two")
def _two(stream):
    """p1: premedicated, two bags, a 6 h pause in hospital; p2: no premedication, leaves early."""
    a = stream("p1")
    a.registered().add("cycle.ordered", -1.5, cycle=1, phase="induction").inpatient()
    a.add("medication.administered", -1, drug="dexamethasone", dose_mg=20)
    _label(a, "B1", -1.2)
    _label(a, "B2", -1.1)
    a.start(0, bag_id="B1").add("pump.infusion_completed", 24, bag_id="B1")
    a.start(24.1, bag_id="B2").stop(30).resume(36).stop(48, reason="user")
    b = stream("p2", pump_id="PUMP-2")
    b.registered().inpatient().start(0).add("encounter.discharged", 30).stop(60, reason="user")
    return a.events + b.events


def _digest(events, pack) -> Population:
    return digest_events(events, Params.from_pack(pack.params))


def _by_req(pop, findings):
    return {c.requirement: (c.numerator, c.denominator) for c in compliance(pop, findings)}


def test_patient_days_count_only_the_time_the_drug_runs(two, pack):
    pop = _digest(two, pack)
    assert pop.patient_days * 24 == pytest.approx(24 + 5.9 + 12 + 60)


def test_a_new_bag_after_a_completed_one_is_a_bag_and_not_a_restart(two, pack):
    pop = _digest(two, pack)
    assert (pop.bags, pop.restarts, pop.cycles) == (2, 1, 2)
    assert [m.kind for m in pop.patients["p1"].moments] == ["cycle_start", "long_restart"]


def test_premedication_compliance_counts_the_moments_findings_cite(two, pack, run):
    findings = run(two)
    assert sorted(f.code for f in findings) == [
        "HOSPITALIZATION_REQUIRED",
        "PREMEDICATION_MISSING",
        "PREMEDICATION_MISSING",
    ]
    by = _by_req(_digest(two, pack), findings)
    assert by["R-PREMED"] == (1, 3)  # p1 started premedicated; its restart and p2's start not


def test_a_cycle_left_early_is_a_hospitalization_window_not_kept(two, pack, run):
    by = _by_req(_digest(two, pack), run(two))
    assert by["R-HOSP"] == (1, 2)
    assert by["R-REINIT"] == (1, 1)  # p1's restart was in hospital


def test_unsupervised_restart_outside_hospital_counts_against_reinitiation(stream, pack, run):
    s = stream("p3").registered(indication="mrd_positive").start(0).stop(80).resume(85)
    s.stop(90, reason="user")
    findings = run(s.events)
    assert "REINITIATION_UNSUPERVISED" in {f.code for f in findings}
    assert _by_req(_digest(s.events, pack), findings)["R-REINIT"] == (0, 1)


def test_a_bag_run_past_its_label_is_not_on_time(stream, pack, run):
    s = stream("p4").registered().inpatient()
    _label(s, "B1", -1)
    s.add("medication.administered", -0.5, drug="dexamethasone", dose_mg=20)
    s.start(0, bag_id="B1").add("pump.infusion_completed", 27, bag_id="B1")
    findings = run(s.events)
    assert [f.code for f in findings] == ["BAG_OVERDUE"]
    pop = _digest(s.events, pack)
    assert _by_req(pop, findings)["R-BAG-TIME"] == (0, 1)
    per_bag = {r.label: r.per_100 for r in rates(pop, findings)}["findings per 100 bags"]
    assert per_bag == pytest.approx(100.0)


def test_patient_days_are_split_at_monday_midnight(stream, pack):
    # T0 is Monday 2026-03-02 08:00 UTC: run from Sunday 20:00 to Monday 08:00
    s = stream("p5").registered(at_h=-20).start(-12).stop(0, reason="user")
    weeks = patient_days_by_week(_digest(s.events, pack))
    monday = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    assert weeks == {
        monday - 7 * DAY: pytest.approx(4 * HOUR / DAY),
        monday: pytest.approx(8 * HOUR / DAY),
    }


def test_u_chart_limits_widen_in_a_week_with_little_exposure():
    chart = u_chart("t", "patient-days", [(0.0, 4, 200.0), (1.0, 2, 50.0)])
    assert chart.centre == pytest.approx(6 / 2.5)
    small, big = chart.points[1], chart.points[0]
    assert big.ucl == pytest.approx(2.4 + 3 * math.sqrt(2.4 / 2))
    assert small.ucl == pytest.approx(2.4 + 3 * math.sqrt(2.4 / 0.5))
    assert big.lcl == 0.0
    assert small.value == pytest.approx(4.0)


def test_p_chart_marks_a_week_outside_its_limits():
    weeks = [(float(w), 99, 100.0) for w in range(5)] + [(5.0, 60, 100.0)]
    chart = p_chart("t", "bags", weeks)
    assert chart.centre == pytest.approx(100 * 555 / 600)
    assert [p.signal for p in chart.points] == [False] * 5 + [True]


def test_a_week_without_exposure_has_no_value():
    chart = u_chart("t", "bags", [(0.0, 0, 0.0), (1.0, 1, 10.0)])
    assert chart.points[0].value is None
    assert not chart.points[0].signal
