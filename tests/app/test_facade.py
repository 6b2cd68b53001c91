"""The public face: ``from pumpguard import ...`` and the test helpers a site uses."""

from __future__ import annotations

import pumpguard
import pytest
from pumpguard.engine.errors import InputError
from pumpguard.testing import CapturingSink, MemorySource, replay

PUBLIC = {
    "CompiledPack",
    "Clock",
    "ENGINE_ERROR_CODE",
    "Engine",
    "Event",
    "EventSource",
    "Finding",
    "FindingSink",
    "InputError",
    "LiveClock",
    "ManualClock",
    "PumpguardError",
    "Reject",
    "Replay",
    "ReplayClock",
    "RuleEvaluationError",
    "RulePackError",
    "Severity",
    "SimulatedClock",
    "default_pack",
    "load_pack",
    "open_source",
    "parse_event",
}


def test_the_facade_exports_exactly_its_public_names():
    assert set(pumpguard.__all__) == PUBLIC | {"__version__"}
    for name in PUBLIC:
        assert getattr(pumpguard, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = pumpguard.no_such_thing  # type: ignore[attr-defined]


def _flush_course() -> list[dict[str, object]]:
    base = {"patient_id": "S-1"}
    return [
        {
            **base,
            "event_id": "e1",
            "type": "patient.registered",
            "ts": "2026-03-02T07:00:00Z",
            "weight_kg": 70,
            "indication": "relapsed_refractory",
        },
        {
            **base,
            "event_id": "e2",
            "type": "encounter.admitted",
            "ts": "2026-03-02T07:30:00Z",
            "setting": "inpatient",
        },
        {
            **base,
            "event_id": "e3",
            "type": "pump.infusion_started",
            "ts": "2026-03-02T08:00:00Z",
            "pump_id": "P1",
            "drug": "blinatumomab",
            "rate_ml_h": 10,
            "dose_mcg_day": 9,
        },
        {
            **base,
            "event_id": "e4",
            "type": "pump.flush",
            "ts": "2026-03-02T10:00:00Z",
            "pump_id": "P1",
            "volume_ml": 5,
        },
    ]


def test_a_site_replays_its_own_course_from_memory():
    pack = pumpguard.load_pack(pumpguard.default_pack())
    sink = CapturingSink()
    findings = replay(pack, MemorySource(_flush_course()), sink=sink)
    assert "LINE_FLUSH" in sink.codes
    assert sink.findings == findings


def test_a_rejected_record_fails_the_helper_loudly():
    pack = pumpguard.load_pack(pumpguard.default_pack())
    with pytest.raises(InputError, match="item 1"):
        replay(pack, MemorySource([{"event_id": "x", "type": "no.such_type"}]))


def test_every_exported_name_has_a_home():
    assert set(pumpguard.__all__) - {"__version__"} == set(pumpguard._EXPORTS)
