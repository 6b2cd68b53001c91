"""One table maps alarm kinds and stop reasons to MDC terms, for the reader and the writer."""

from __future__ import annotations

from pumpguard.adapters.mdc import (
    ALARM_KINDS,
    ALARM_TERMS,
    NOT_DELIVERING_REASONS,
    STOP_ALARMS,
    STOP_REASONS,
    STOP_TEXT,
    Term,
    lookup,
    term_code,
    term_refid,
)
from pumpguard.engine.events import AlarmKind, StopReason


class TestAlarmTable:
    """Every canonical alarm kind has one term, and that term reads back as the kind."""

    def test_every_kind_has_a_term(self) -> None:
        """The table covers the event model's kinds, no more."""
        assert set(ALARM_TERMS) == {k.value for k in AlarmKind}

    def test_each_term_reads_back_as_its_kind(self) -> None:
        """What the writer sends (REFID and code) is what the reader maps back."""
        for kind, term in ALARM_TERMS.items():
            assert lookup(term_code(term), term_refid(term)) is term
            assert ALARM_KINDS[term] == kind


class TestStopReasonTable:
    """Every canonical stop reason is written as a Not-Delivering Reason that reads back."""

    def test_every_reason_is_written(self) -> None:
        """The table covers the event model's stop reasons."""
        assert set(STOP_TEXT) == {r.value for r in StopReason}

    def test_each_reason_reads_back(self) -> None:
        """The text (and, for an alarm stop, the alarm named with it) gives the reason back."""
        for row in STOP_REASONS:
            reason = NOT_DELIVERING_REASONS[row.text]
            if row.alarm is not None:
                assert reason == "alarm"
                reason = STOP_ALARMS[row.alarm]
            assert reason == row.reason

    def test_alarm_stops_name_alarm_terms(self) -> None:
        """The alarms an alarming stop can name are alarm terms of the alarm table."""
        assert set(STOP_ALARMS) <= set(ALARM_TERMS.values()) - {Term.EVT_ALARM}
