"""R-HOSP: hospitalized for the first days of cycles 1 and 2, by indication."""

from __future__ import annotations

import pytest
from pumpguard.engine.findings import rfc3339

CODES = {"HOSPITALIZATION_REQUIRED"}


@pytest.fixture(name="run")
def _run_only(run):
    """Only this requirement's findings: the other rules are tested on their own."""
    return lambda *a, **kw: [f for f in run(*a, **kw) if f.code in CODES]


class TestRelapsedRefractory:
    def test_discharge_on_day_five_of_cycle_one(self, stream, run):
        """Leaving hospital on day 5 of cycle 1 while the drug runs is a breach, raised then."""
        s = stream().registered().inpatient().start(0).add("encounter.discharged", 100)
        [f] = run(s.events)
        assert (f.code, rfc3339(f.ts)) == ("HOSPITALIZATION_REQUIRED", "2026-03-06T12:00:00Z")
        assert "day 5 of cycle 1" in f.message

    def test_discharge_after_nine_days_is_fine(self, stream, run):
        """Discharge exactly at the end of day 9 (216 h) is outside the window."""
        s = stream().registered().inpatient().start(0).add("encounter.discharged", 216)
        assert run(s.events) == []

    def test_discharge_one_minute_before_the_window_ends(self, stream, run):
        """Discharge at 215 h 59 min is still inside the window."""
        s = stream().registered().inpatient().start(0).add("encounter.discharged", 216 - 1 / 60)
        assert len(run(s.events)) == 1

    def test_cycle_started_at_home(self, stream, run):
        """Starting cycle 1 with no admission on record is a breach at the start."""
        s = stream().registered().start(0)
        [f] = run(s.events)
        assert rfc3339(f.ts) == "2026-03-02T08:00:00Z"
        assert "setting: not recorded" in f.message

    def test_raised_once_per_cycle(self, stream, run):
        """A state finding is raised once per cycle, not at every later start."""
        s = stream().registered().start(0).stop(5).resume(6).stop(30).resume(31)
        assert len(run(s.events)) == 1

    def test_cycle_two_window_is_two_days(self, stream, run):
        """Cycle 2: discharge at 30 h breaches, discharge at 48 h does not."""
        s = stream().registered().inpatient().start(0).stop(672)
        s.add("cycle.ordered", 1000, cycle=2, phase="induction")
        s.inpatient(1007).start(1008).add("encounter.discharged", 1038)
        [f] = run(s.events)
        assert "cycle 2" in f.message
        ok = stream().registered().inpatient().start(0).stop(672)
        ok.add("cycle.ordered", 1000, cycle=2, phase="induction")
        ok.inpatient(1007).start(1008).add("encounter.discharged", 1056)
        assert run(ok.events) == []

    def test_observation_counts_as_hospitalized(self, stream, run):
        """An observation stay is hospitalization for this rule."""
        s = stream().registered().add("encounter.admitted", -1, setting="observation").start(0)
        assert run(s.events) == []

    def test_transfer_to_outpatient_in_window(self, stream, run):
        """A transfer to an outpatient setting inside the window is a breach."""
        s = stream().registered().inpatient().start(0)
        s.add("encounter.transferred", 50, setting="outpatient")
        assert len(run(s.events)) == 1

    def test_discharge_while_stopped_is_silent_until_the_drug_runs(self, stream, run):
        """The breach needs the drug running outside hospital; it comes at the restart."""
        s = stream().registered().inpatient().start(0).stop(40)
        s.add("encounter.discharged", 41).resume(42)
        [f] = run(s.events)
        assert rfc3339(f.ts) == "2026-03-04T02:00:00Z"


class TestMrdPositive:
    def test_three_day_window(self, stream, run):
        """MRD-positive: discharge at 60 h breaches (window 72 h)."""
        s = stream().registered(indication="mrd_positive").inpatient().start(0)
        s.add("encounter.discharged", 60)
        [f] = run(s.events)
        assert f.rule_id == "BLN-HOSP-MRD-01"

    def test_discharge_after_three_days_is_fine(self, stream, run):
        """MRD-positive: discharge at 72 h is outside the window."""
        s = stream().registered(indication="mrd_positive").inpatient().start(0)
        s.add("encounter.discharged", 72)
        assert run(s.events) == []
