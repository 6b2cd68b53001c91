"""The one exception tree of pumpguard.

::

    PumpguardError
    ├── InputError            a record could not become a canonical event (a reject)
    │   ├── ParseError        unreadable bytes, bad JSON, a broken HL7 message
    │   ├── SchemaError       readable, but not a valid canonical event
    │   │   └── UnitError     a quantity in a unit that cannot be converted (adapters.units)
    │   └── BindingError      a pump event that cannot be tied to a patient
    ├── RulePackError         a rule pack that does not load, validate or compile
    │   └── ExprError         a condition or value expression that does not compile
    ├── ScenarioError         a drill scenario that does not load (simulations.scenario)
    ├── EngineError           the engine failed while evaluating: the caller must see it
    │   ├── RuleEvaluationError   a rule's condition or action failed (live: an alert)
    │   │   └── GateError         a message that must not be posted to durable-rules
    │   └── LateEventError        an event older than the engine's clock, where that is refused
    └── SinkError             a finding could not be delivered
        └── UnsupportedEvent  an event a sink's format cannot express (adapters.hl7v2.writer)

The three defined in other rooms subclass these, so one ``except PumpguardError``
catches everything pumpguard raises on purpose.

Input errors become rejects (where, why) and the rest of the stream goes on.
Engine errors are never caught-and-logged: a rule that fails to run is itself
a safety event (durable-rules swallows action errors; we do not).
"""

from __future__ import annotations

__all__ = [
    "BindingError",
    "EngineError",
    "ExprError",
    "GateError",
    "InputError",
    "LateEventError",
    "ParseError",
    "PumpguardError",
    "RuleEvaluationError",
    "RulePackError",
    "SchemaError",
    "SinkError",
]


class PumpguardError(Exception):
    """Base of every error pumpguard raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        position: str | None = None,
        patient_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.position = position
        self.patient_id = patient_id
        self.event_id = event_id


class InputError(PumpguardError):
    """A record that cannot be turned into a canonical event."""


class ParseError(InputError):
    """The bytes could not be read as the format they claim to be."""


class SchemaError(InputError):
    """Readable, but not a valid canonical event."""


class BindingError(InputError):
    """A device event that cannot be tied to a patient without guessing."""


class RulePackError(PumpguardError):
    """A rule pack that fails to load, validate or compile."""


class EngineError(PumpguardError):
    """The engine failed; never swallowed."""


class RuleEvaluationError(EngineError):
    """A rule's condition or action failed for one event."""

    def __init__(self, message: str, *, rule_id: str | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.rule_id = rule_id


class GateError(RuleEvaluationError):
    """A message that must not be posted to durable-rules (the whole message, not one rule)."""


class ExprError(RulePackError):
    """A condition that cannot be compiled; the message says where and why."""


class LateEventError(EngineError):
    """An event behind the engine's clock, where the caller asked to refuse those."""


class SinkError(PumpguardError):
    """A finding could not be delivered to its sink."""
