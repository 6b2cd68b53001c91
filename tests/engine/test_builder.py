"""The one builder of canonical events: shared ids, times, pump fields, and validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pumpguard.engine.builder import EventBuilder, check, stream_time, to_line
from pumpguard.engine.errors import SchemaError
from pumpguard.engine.events import InfusionStarted
from pumpguard.engine.pack import CompiledPack
from pumpguard.testing import MemorySource, replay

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_ids_count_from_one_per_builder_prefixed_by_the_patient():
    b = EventBuilder("P-7")
    first = b.record("encounter.admitted", T0, setting="inpatient")
    second = b.record("encounter.discharged", T0 + timedelta(hours=1))
    other = EventBuilder("P-8").record("encounter.discharged", T0)
    assert [first["event_id"], second["event_id"], other["event_id"]] == [
        "P-7-00001",
        "P-7-00002",
        "P-8-00001",
    ]


def test_a_prefix_and_width_can_be_chosen():
    b = EventBuilder("P-1", id_prefix="s", id_width=4)
    assert b.record("encounter.discharged", T0)["event_id"] == "s-0001"


def test_times_are_written_in_utc_whole_seconds_with_a_z():
    paris = timezone(timedelta(hours=2))
    at = datetime(2026, 3, 2, 10, 0, 5, 999_999, tzinfo=paris)
    assert stream_time(at) == "2026-03-02T08:00:05Z"
    assert EventBuilder("P-1").record("encounter.discharged", at)["ts"] == "2026-03-02T08:00:05Z"


def test_a_pump_event_carries_the_builders_pump_after_the_patient():
    rec = EventBuilder("P-1").record("pump.infusion_stopped", T0, reason="user")
    assert list(rec)[:5] == ["event_id", "type", "ts", "patient_id", "pump_id"]
    assert rec["pump_id"] == "PUMP-P-1"


def test_a_pump_named_in_the_fields_wins_and_keeps_its_place():
    rec = EventBuilder("P-1").record("pump.infusion_stopped", T0, reason="user", pump_id="PUMP-9")
    assert list(rec)[-1] == "pump_id"
    assert rec["pump_id"] == "PUMP-9"


def test_an_event_off_the_pump_carries_no_pump():
    rec = EventBuilder("P-1").record("nursing.supervision", T0, actor_role="nurse")
    assert "pump_id" not in rec


def test_a_builder_without_a_pump_refuses_a_pump_event_that_names_none():
    with pytest.raises(SchemaError, match="pump_id"):
        EventBuilder("P-1", pump_id=None).record("pump.infusion_stopped", T0, reason="user")


def test_a_field_given_as_none_is_left_out():
    rec = EventBuilder("P-1").record(
        "pump.infusion_resumed", T0, rate_ml_h=None, source="ward feed"
    )
    assert "rate_ml_h" not in rec
    assert rec["source"] == "ward feed"


def test_an_invalid_field_is_refused_with_the_field_named():
    b = EventBuilder("P-1")
    with pytest.raises(SchemaError, match="rate_ml_h") as err:
        b.record("pump.infusion_started", T0, drug="blinatumomab", rate_ml_h="10")
    assert "P-1-00001" in str(err.value)


def test_an_unknown_type_is_refused():
    with pytest.raises(SchemaError, match="unknown event type"):
        EventBuilder("P-1").record("pump.exploded", T0)


def test_a_line_is_compact_json_in_the_order_built():
    b = EventBuilder("P-1")
    line = b.line("pump.infusion_stopped", T0, reason="user")
    assert line == (
        '{"event_id":"P-1-00001","type":"pump.infusion_stopped","ts":"2026-03-02T08:00:00Z",'
        '"patient_id":"P-1","pump_id":"PUMP-P-1","reason":"user"}'
    )
    assert to_line(json.loads(line)) == line


def test_an_event_is_the_validated_model_the_engine_reads():
    ev = EventBuilder("P-1").event(
        "pump.infusion_started", T0, drug="blinatumomab", rate_ml_h=10.0, dose_mcg_day=9
    )
    assert isinstance(ev, InfusionStarted)
    assert ev.ts == T0
    assert ev.pump_id == "PUMP-P-1"


def test_a_record_changed_after_it_was_built_is_checked_again():
    rec = EventBuilder("P-1").record("nursing.bag_change", T0, bag_id="B1", actor_role="nurse")
    assert check({**rec, "line_flushed": True}).type == "nursing.bag_change"
    with pytest.raises(SchemaError):
        check({**rec, "ts": "2026-03-02T08:00:00"})  # no offset


def test_records_built_for_a_site_test_replay_through_a_memory_source(pack: CompiledPack):
    b = EventBuilder("P-1")
    records = [
        b.record("patient.registered", T0, weight_kg=70, indication="relapsed_refractory"),
        b.record("pump.infusion_started", T0, drug="blinatumomab", rate_ml_h=10, bag_id="B1"),
        b.record("pump.flush", T0 + timedelta(hours=1), volume_ml=5),
    ]
    codes = [f.code for f in replay(pack, MemorySource(records))]
    assert "LINE_FLUSH" in codes
