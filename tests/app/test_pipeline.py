"""The composition root (pumpguard.pipeline) and the one driver (engine.replay.drive)."""

from __future__ import annotations

import io

from pumpguard.adapters.base import Reject as AdapterReject
from pumpguard.engine.core import Engine
from pumpguard.engine.rejects import Reject
from pumpguard.engine.replay import drive, time_ordered
from pumpguard.pipeline import AuditResult, RejectReport, audit, bundled_demo_course


class TestAudit:
    def test_audit_returns_a_typed_record_of_the_run(self, pack):
        """Findings, rejects, per-input tallies and replay stats come back in one record."""
        out = io.StringIO()
        result = audit([bundled_demo_course()], pack, out=out, rejects=RejectReport(None))
        assert isinstance(result, AuditResult)
        assert len(out.getvalue().splitlines()) == len(result.findings) > 0
        assert result.rejects.errors == 0
        assert result.engine_errors == 0
        [tally] = result.rejects.inputs
        assert tally["events"] == result.stats.events_read
        assert result.stats.findings == len(result.findings)


class TestReject:
    def test_one_reject_type_from_the_source_to_the_cli(self):
        """The adapters' Reject is the engine's record, not a copy of it."""
        assert AdapterReject is Reject


class TestDrive:
    def test_the_clock_reaches_the_last_event_by_default(self, pack, stream):
        """Without an end, a deadline after the last event has not passed."""
        s = stream().registered().inpatient().start(0).stop(1)
        assert list(drive(Engine(pack), s.events)) == list(
            drive(Engine(pack), s.events, end=s.events[-1].ts.timestamp())
        )

    def test_a_step_sees_every_instant_in_order(self, pack, stream):
        """A simulated clock is moved forward only, to each event (and deadline) in turn."""
        s = stream().registered().inpatient().start(0).stop(1).resume(2)
        seen: list[float] = []
        list(drive(Engine(pack), s.events, step=seen.append))
        assert seen == sorted(seen)
        assert {e.ts.timestamp() for e in s.events} <= set(seen)

    def test_time_ordered_puts_documentation_first_within_a_second(self, stream):
        """Same instant, same patient: the replay's same-second order, ties kept in input order."""
        s = stream().start(0).registered(0)
        assert time_ordered(s.events)[0].type == "patient.registered"
