"""Canonical events: strict, offset-aware, never guessed."""

from __future__ import annotations

import json

import pytest
from pumpguard.engine.events import EVENT_TYPES, event_adapter
from pumpguard.engine.gate import describe_validation_error
from pydantic import ValidationError

BASE = {
    "event_id": "e1",
    "type": "pump.infusion_started",
    "ts": "2026-03-02T08:00:00+01:00",
    "patient_id": "p1",
    "pump_id": "PUMP-7",
    "drug": "blinatumomab",
    "rate_ml_h": 10,
}


def reason(**changes) -> str:
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if v is not ...}
    with pytest.raises(ValidationError) as info:
        event_adapter.validate_json(json.dumps(data))
    return describe_validation_error(info.value)


def test_every_type_in_the_spec_has_a_model():
    """All thirty canonical types of spec/events.md version 1 are known."""
    assert len(EVENT_TYPES) == 30
    assert "pump.connection_restored" in EVENT_TYPES
    assert "order.discontinued" in EVENT_TYPES


def test_valid_event_keeps_its_offset():
    """The timestamp's offset is kept, and the instant is exact."""
    e = event_adapter.validate_json(json.dumps(BASE))
    assert e.ts.utcoffset().total_seconds() == 3600
    assert e.rate_ml_h == 10.0


def test_timestamp_without_offset_is_rejected():
    """A naive timestamp is never guessed."""
    assert "no UTC offset" in reason(ts="2026-03-02T08:00:00")


def test_negative_rate_is_rejected():
    assert "rate_ml_h" in reason(rate_ml_h=-1)


def test_numeric_string_is_not_coerced():
    """ "10" is not 10 mL/h."""
    assert "rate_ml_h" in reason(rate_ml_h="10")


def test_boolean_is_not_a_number():
    assert "rate_ml_h" in reason(rate_ml_h=True)


def test_non_finite_number_is_rejected():
    with pytest.raises(ValidationError):
        event_adapter.validate_json(json.dumps(BASE).replace('"rate_ml_h": 10', '"rate_ml_h": NaN'))


def test_unknown_type_is_rejected_by_name():
    assert "unknown event type 'pump.teleport'" in reason(type="pump.teleport")


def test_missing_required_field_is_named():
    assert "drug: required field missing" in reason(drug=...)


def test_pump_event_needs_a_pump_id():
    assert "pump_id" in reason(pump_id=...)


def test_unknown_fields_are_kept_aside_and_listed():
    """Unknown fields are never used, but they are reported."""
    e = event_adapter.validate_json(json.dumps({**BASE, "colour": "red", "zeta": 1}))
    assert e.unknown_fields == ("colour", "zeta")


def test_bad_json_is_described():
    with pytest.raises(ValidationError) as info:
        event_adapter.validate_json("{not json")
    assert describe_validation_error(info.value).startswith("not valid JSON")


def test_bag_duration_must_be_a_label_duration():
    """Bags run 24, 48, 72, 96 or 168 hours."""
    bag = {
        "event_id": "b",
        "type": "bag.dispensed",
        "ts": "2026-03-02T08:00:00Z",
        "patient_id": "p1",
        "bag_id": "B1",
        "drug": "blinatumomab",
        "dose_mcg_day": 28,
        "rate_ml_h": 10,
        "volume_ml": 240,
        "duration_h": 36,
    }
    with pytest.raises(ValidationError):
        event_adapter.validate_json(json.dumps(bag))


@pytest.mark.parametrize("ts", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_time_whose_utc_instant_is_outside_years_1_to_9999_is_rejected(ts):
    """Its UTC instant cannot be held: refused at the edge, not overflowing in the engine."""
    assert "outside the years 1 to 9999" in reason(ts=ts)


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00"])
def test_first_and_last_representable_instants_are_accepted(ts):
    assert event_adapter.validate_json(json.dumps({**BASE, "ts": ts})).ts.year in (1, 9999)
