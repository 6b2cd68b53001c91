"""R-REINIT: a restart after 4 h or more needs hospital or documented supervision."""

from __future__ import annotations

import pytest
from pumpguard.engine.findings import rfc3339

H = 1 / 60  # one minute in hours


CODES = {"REINITIATION_UNSUPERVISED"}


@pytest.fixture(name="run")
def _run_only(run):
    """Only this requirement's findings: the other rules are tested on their own."""
    return lambda *a, **kw: [f for f in run(*a, **kw) if f.code in CODES]


def _course(stream, gap_h: float, *, inpatient_at_restart: bool = False):
    s = stream().registered().inpatient().start(0)
    s.add("encounter.discharged", 300)
    s.stop(400)
    if inpatient_at_restart:
        s.inpatient(400 + gap_h - 0.5)
    s.resume(400 + gap_h)
    return s


class TestThreshold:
    def test_exactly_four_hours_fires(self, stream, run):
        """An interruption of exactly 4 h 00 min counts (inclusive threshold)."""
        s = _course(stream, 4.0)
        [f] = run(s.events, until_h=406)
        assert f.code == "REINITIATION_UNSUPERVISED"
        assert "4 h 00 min" in f.message

    def test_three_hours_fifty_nine_does_not_fire(self, stream, run):
        """3 h 59 min is below the threshold."""
        s = _course(stream, 4.0 - H)
        assert run(s.events, until_h=406) == []

    def test_long_interruption_message_has_the_numbers(self, stream, run):
        """The message states the interruption as hours and minutes."""
        s = _course(stream, 5 + 10 * H)
        [f] = run(s.events, until_h=410)
        assert "5 h 10 min" in f.message


class TestWindow:
    def test_finding_is_raised_when_the_window_closes(self, stream, run):
        """A missing supervision becomes certain one hour after the restart, at that time."""
        s = _course(stream, 5.0)
        [f] = run(s.events, until_h=410)
        assert rfc3339(f.ts) == "2026-03-19T06:00:00Z"  # restart at 05:00 (T0 + 405 h), + 1 h
        assert f.evidence == [s.events[-1].event_id]

    def test_replay_ending_inside_the_window_raises_nothing(self, stream, run):
        """The log does not say what happened after its end: no finding yet."""
        s = _course(stream, 5.0)
        assert run(s.events, until_h=405.5) == []

    @pytest.mark.parametrize("offset_h", [-1.0, -0.5, 0.0, 0.5, 1.0])
    def test_supervision_within_one_hour_either_side_counts(self, stream, run, offset_h):
        """Supervision from 1 h before to 1 h after the restart (both ends inclusive)."""
        s = _course(stream, 5.0)
        s.add("nursing.supervision", 405 + offset_h, actor_role="nurse")
        s.events.sort(key=lambda e: e.ts)
        assert run(s.events, until_h=410) == []

    def test_supervision_just_after_the_window_is_too_late(self, stream, run):
        """Supervision at 1 h 01 min after the restart does not count."""
        s = _course(stream, 5.0)
        s.add("nursing.supervision", 406 + H, actor_role="nurse")
        assert [f.code for f in run(s.events, until_h=410)] == ["REINITIATION_UNSUPERVISED"]

    def test_supervision_by_a_caregiver_does_not_count(self, stream, run):
        """Only a healthcare professional's supervision counts."""
        s = _course(stream, 5.0)
        s.add("nursing.supervision", 405.5, actor_role="caregiver")
        assert len(run(s.events, until_h=410)) == 1

    def test_restart_in_hospital_is_fine(self, stream, run):
        """A restart while the patient is an inpatient needs no documented supervision."""
        s = _course(stream, 5.0, inpatient_at_restart=True)
        assert run(s.events, until_h=410) == []


class TestScope:
    def test_cycle_start_is_not_a_reinitiation(self, stream, run):
        """An ordered cycle start after weeks off is covered by other rules, not R-REINIT."""
        s = stream().registered().inpatient().start(0).stop(672)
        s.add("encounter.discharged", 673)
        s.add("cycle.ordered", 1000, cycle=2, phase="induction")
        s.start(1008)
        assert "REINITIATION_UNSUPERVISED" not in [f.code for f in run(s.events, until_h=1012)]

    def test_each_patient_has_its_own_window(self, stream, run):
        """Supervision of one patient does not close another patient's window."""
        a = _course(stream, 5.0)
        b = stream("p2")
        b.add("nursing.supervision", 405.5, actor_role="nurse")
        events = sorted(a.events + b.events, key=lambda e: e.ts)
        [f] = run(events, until_h=410)
        assert f.patient_id == "p1"
