"""Damaged HL7 v2 inputs: every message ends as events, a warning or a reject, with where and why.

The corpus is tests/fixtures/bad/hl7 (pumpguard's own files) and its cases.yaml
manifest; each entry is the tally Hl7Source must reach for that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pumpguard.adapters.base import Reject
from pumpguard.adapters.hl7v2 import Hl7Source
from pumpguard.engine.events import Event

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad" / "hl7"
CASES: list[dict[str, Any]] = yaml.safe_load((BAD / "cases.yaml").read_text(encoding="utf-8"))


def read(name: str) -> tuple[Hl7Source, list[Event | Reject]]:
    source = Hl7Source(BAD / name)
    return source, list(source)


def rejects(records: list[Event | Reject], level: str | None = None) -> list[Reject]:
    return [r for r in records if isinstance(r, Reject) and level in (None, r.level)]


def events(records: list[Event | Reject]) -> list[Event]:
    return [r for r in records if not isinstance(r, Reject)]


class TestManifest:
    """Each damaged file reaches the tally its manifest entry states, and says where."""

    def test_every_file_has_one_manifest_entry(self) -> None:
        listed = [case["file"] for case in CASES]
        assert sorted(listed) == sorted(p.name for p in BAD.glob("*.hl7"))
        assert len(set(listed)) == len(listed)

    @pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
    def test_tally_equals_the_manifest(self, case: dict[str, Any]) -> None:
        source, _ = read(case["file"])
        got = {k: getattr(source.tally, k) for k in ("records", "events", "warned", "rejected")}
        assert got == {k: case[k] for k in got}
        assert source.tally.balanced

    @pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
    def test_every_reject_names_the_file_and_a_line(self, case: dict[str, Any]) -> None:
        _, records = read(case["file"])
        for reject in rejects(records):
            assert reject.source == str(BAD / case["file"])
            assert "line " in reject.position
            assert reject.reason

    @pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
    def test_reasons_stay_short(self, case: dict[str, Any]) -> None:
        _, records = read(case["file"])
        assert all(len(r.reason) <= 1100 for r in rejects(records))

    @pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
    def test_exit_status_follows_the_tally(self, case: dict[str, Any]) -> None:
        # Replay also refuses duplicate event_ids, which the source cannot see.
        expected = 3 if case["rejected"] or case["file"] == "duplicate_msh10.hl7" else 0
        assert case["exit"] == expected


class TestNoWholeFileRefusal:
    """Text before the first MSH, or nothing at all, is reported and the rest is read."""

    def test_prose_before_first_msh_is_a_warning_and_messages_after_it_are_read(self) -> None:
        _, records = read("prose_before_msh.hl7")
        assert records[0] == Reject(
            str(BAD / "prose_before_msh.hl7"), "line 1", records[0].reason, "warning"
        )
        assert "2 lines of text (lines 1-2)" in records[0].reason
        assert [e.type for e in events(records)] == ["pump.infusion_started", "pump.bolus"]

    def test_empty_file_is_one_warning_naming_the_file(self) -> None:
        _, records = read("empty.hl7")
        (warning,) = records
        assert isinstance(warning, Reject)
        assert warning.level == "warning"
        assert warning.source.endswith("empty.hl7")
        assert "empty" in warning.reason


class TestNoSilentMerge:
    """A record is never absorbed into its neighbour."""

    def test_message_without_msh_is_rejected_apart_and_the_one_before_keeps_its_events(
        self,
    ) -> None:
        _, records = read("lost_msh.hl7")
        assert isinstance(records[0], Event)
        assert records[0].event_id == "C-START"
        lost = records[1]
        assert isinstance(lost, Reject)
        assert lost.position == "message 2 (no MSH, line 15)"
        assert "MSH line is missing" in lost.reason

    def test_json_line_in_hl7_file_is_rejected_with_its_line(self) -> None:
        _, records = read("json_line_between_messages.hl7")
        (reject,) = rejects(records)
        assert reject.position == "line 15"
        assert "JSON line" in reject.reason
        assert len(events(records)) == 2

    def test_wrapped_msh10_makes_the_message_malformed(self) -> None:
        _, records = read("wrapped_msh10.hl7")
        (reject,) = rejects(records)
        assert reject.position == "message 1 (line 1)"
        assert "line 2 continues the segment" in reject.reason
        assert "malformed" in reject.reason

    def test_text_inside_a_message_rejects_that_message_whole(self) -> None:
        _, records = read("junk_inside_message.hl7")
        (reject,) = rejects(records)
        assert reject.position == "message 2 (line 15)"
        assert [e.event_id for e in events(records)] == ["C-START"]


class TestNoGuessing:
    """An enumerated value the reader does not know is said, never mapped to a meaning."""

    def test_unknown_delivery_status_is_rejected_never_a_stop(self) -> None:
        _, records = read("delivery_status_unknown.hl7")
        assert "pump.infusion_stopped" not in [e.type for e in events(records)]
        errors = rejects(records, "error")
        assert [r.position for r in errors] == ["message 3 (line 26)", "message 4 (line 37)"]
        assert "'RUNNING^Running'" in errors[1].reason

    def test_not_infusing_status_is_not_read_as_delivering(self) -> None:
        _, records = read("pcd01_not_infusing_first.hl7")
        (warning,) = rejects(records, "warning")
        assert "says not delivering" in warning.reason
        assert [e.type for e in events(records)] == ["pump.infusion_started"]

    def test_unknown_active_source_rejects_the_start(self) -> None:
        _, records = read("unknown_active_source.hl7")
        (error,) = rejects(records, "error")
        assert "'pump-source-info-mystery'" in error.reason
        assert "pump.bolus" not in [e.type for e in events(records)]

    def test_unknown_stop_reason_stops_with_reason_other_and_says_so(self) -> None:
        _, records = read("unknown_stop_reason.hl7")
        stop = events(records)[-1]
        assert stop.type == "pump.infusion_stopped"
        assert stop.reason == "other"
        (warning,) = rejects(records, "warning")
        assert "'pump-stopped-napping'" in warning.reason


class TestNoCrash:
    """Values that used to raise inside the reader are rejects of their message."""

    @pytest.mark.parametrize(
        "name", ["obx4_two_million.hl7", "obx4_five_thousand_digits.hl7", "vmd_27.hl7"]
    )
    def test_channel_number_out_of_range_is_a_reject(self, name: str) -> None:
        _, records = read(name)
        (reject,) = rejects(records)
        assert "pumpguard reads channels 1 to 26" in reject.reason
        assert len(events(records)) == 1

    def test_times_outside_years_1_to_9999_are_rejected(self) -> None:
        _, records = read("time_out_of_range.hl7")
        reasons = [r.reason for r in rejects(records)]
        assert "outside years 1 to 9999" in reasons[0]
        assert "outside years 1 to 9999" in reasons[1]
        assert "not a real offset" in reasons[2]

    def test_a_huge_value_is_quoted_at_most_200_characters(self) -> None:
        _, records = read("huge_field.hl7")
        (reject,) = rejects(records)
        assert "x" * 200 in reject.reason
        assert "x" * 201 not in reject.reason
        assert "200,000 characters" in reject.reason


class TestPositions:
    """Events carry the message they came from, so replay can name it later."""

    def test_source_position_names_each_event_message(self) -> None:
        source = Hl7Source(BAD / "duplicate_msh10.hl7")
        seen = [(source.position, r.event_id) for r in source if isinstance(r, Event)]
        assert seen == [
            ("message 1 (line 1)", "DUP-1"),
            ("message 2 (line 15)", "DUP-1"),
            ("message 3 (line 29)", "C-3"),
        ]
