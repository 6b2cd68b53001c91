"""R-FLUSH: never flush, prime or bolus the line that holds the drug."""

from __future__ import annotations

import pytest

CODES = {"LINE_FLUSH"}


@pytest.fixture(name="run")
def _run_only(run):
    """Only this requirement's findings: the other rules are tested on their own."""
    return lambda *a, **kw: [f for f in run(*a, **kw) if f.code in CODES]


class TestPumpFlush:
    def test_flush_on_drug_channel_is_critical(self, stream, run):
        """A pump flush while the channel holds blinatumomab raises LINE_FLUSH, critical."""
        s = stream().registered().inpatient().start(0).add("pump.flush", 24, volume_ml=5)
        [f] = run(s.events)
        assert (f.code, f.severity.value, f.rule_id) == ("LINE_FLUSH", "critical", "BLN-NOFLUSH-01")
        assert f.evidence == [s.events[-1].event_id]
        assert "5 mL" in f.message

    def test_flush_at_completion_still_counts(self, stream, run):
        """The drug stays in the line after completion, so a flush then is a finding."""
        s = stream().registered().inpatient().start(0).add("pump.infusion_completed", 24)
        s.add("pump.flush", 24.1, volume_ml=3)
        assert [f.code for f in run(s.events)] == ["LINE_FLUSH"]

    def test_flush_of_channel_without_drug_is_silent(self, stream, run):
        """Flushing a saline line that never carried blinatumomab is not a finding."""
        s = stream().registered().inpatient()
        s.add("pump.infusion_started", 0, drug="normal saline", rate_ml_h=50)
        s.add("pump.flush", 1, volume_ml=10)
        assert run(s.events) == []

    def test_other_drug_started_clears_the_channel(self, stream, run):
        """A channel holds the drug until another drug is started on it."""
        s = stream().registered().inpatient().start(0).add("pump.infusion_completed", 24)
        s.add("pump.infusion_started", 25, drug="normal saline", rate_ml_h=50)
        s.add("pump.flush", 26, volume_ml=10)
        assert run(s.events) == []

    def test_flush_on_another_channel_is_silent(self, stream, run):
        """Only the channel carrying the drug is guarded."""
        s = stream().registered().inpatient().start(0)
        s.add("pump.flush", 2, volume_ml=5, channel="B")
        assert run(s.events) == []

    def test_bolus_and_prime_on_drug_line(self, stream, run):
        """A bolus and a prime on the drug's channel each raise LINE_FLUSH."""
        s = stream().registered().inpatient().start(0)
        s.add("pump.bolus", 2, volume_ml=1).add("pump.prime", 3, volume_ml=2)
        assert [f.rule_id for f in run(s.events)] == ["BLN-NOFLUSH-02", "BLN-NOFLUSH-03"]

    def test_every_flush_act_is_reported(self, stream, run):
        """A finding about an act is raised for every act, not once per episode."""
        s = stream().registered().inpatient().start(0)
        s.add("pump.flush", 2, volume_ml=5).add("pump.flush", 3, volume_ml=5)
        assert len(run(s.events)) == 2


class TestDocumentedFlush:
    def test_line_flush_without_aspiration(self, stream, run):
        """A documented flush of the drug's line without aspiration raises LINE_FLUSH."""
        s = stream().registered().inpatient().start(0).add("nursing.line_flush", 5, volume_ml=10)
        assert [f.rule_id for f in run(s.events)] == ["BLN-NOFLUSH-04"]

    def test_line_flush_after_aspiration_is_allowed(self, stream, run):
        """The label allows a catheter flush when the drug is aspirated first."""
        s = stream().registered().inpatient().start(0)
        s.add("nursing.line_flush", 5, volume_ml=10, aspirated_first=True)
        assert run(s.events) == []

    def test_line_flush_explicitly_not_aspirated(self, stream, run):
        """aspirated_first: false is as bad as not documenting it."""
        s = stream().registered().inpatient().start(0)
        s.add("nursing.line_flush", 5, volume_ml=10, aspirated_first=False)
        assert len(run(s.events)) == 1

    def test_bag_change_with_flush(self, stream, run):
        """A bag change documented with line_flushed raises LINE_FLUSH."""
        s = stream().registered().inpatient().start(0)
        s.add("nursing.bag_change", 24, bag_id="B2", actor_role="nurse", line_flushed=True)
        [f] = run(s.events)
        assert f.rule_id == "BLN-NOFLUSH-05"
        assert "B2" in f.message

    def test_bag_change_without_flush(self, stream, run):
        """A clean bag change is not a finding."""
        s = stream().registered().inpatient().start(0)
        s.add("nursing.bag_change", 24, bag_id="B2", actor_role="nurse", line_flushed=False)
        assert run(s.events) == []
