"""One exception tree: everything pumpguard raises on purpose is a PumpguardError,
and nothing raised inside evaluation leaves the engine as an exception."""

from __future__ import annotations

import pumpguard.engine.host as host
import pytest
from pumpguard.adapters.hl7v2 import UnsupportedEvent
from pumpguard.adapters.units import UnitError
from pumpguard.engine.core import ENGINE_ERROR_CODE, Engine
from pumpguard.engine.errors import (
    EngineError,
    ExprError,
    GateError,
    InputError,
    PumpguardError,
    RulePackError,
    SinkError,
)
from pumpguard.engine.state import PatientState
from pumpguard.simulations.scenario import ScenarioError


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (GateError, EngineError),
        (ExprError, RulePackError),
        (UnitError, InputError),
        (UnsupportedEvent, SinkError),
        (ScenarioError, PumpguardError),
    ],
)
def test_every_error_joins_the_tree(error, parent):
    assert issubclass(error, parent)
    assert issubclass(error, PumpguardError)


def test_a_message_refused_by_the_gate_is_an_alert_not_an_exception(pack, stream, monkeypatch):
    engine = Engine(pack)

    def refuse(message):
        raise GateError("a string longer than durable-rules takes")

    monkeypatch.setattr(host, "check_message", refuse)
    s = stream().registered().inpatient().start(0)
    found = engine.submit_all(s.events)
    assert ENGINE_ERROR_CODE in [f.code for f in found]
    assert engine.error_count >= 1


def test_a_failure_in_derived_state_is_an_alert_not_an_exception(pack, stream, monkeypatch):
    engine = Engine(pack)

    def broken(self, event, ts):
        raise KeyError("channel")

    monkeypatch.setattr(PatientState, "apply", broken)
    found = engine.submit(stream().registered().events[0])
    assert [f.code for f in found] == [ENGINE_ERROR_CODE]
    assert "KeyError" in found[0].message
