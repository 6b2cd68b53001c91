"""Canonical events, version 1: the engine's whole input language.

Every adapter turns what it reads into these models and the engine sees nothing
else (``spec/events.md``). The models are strict on purpose: a rate sent as the
string ``"10"`` is an error, not 10 mL/h, because a guessed number in an
infusion log is worse than a reported one. Timestamps must carry an offset.
Numbers must be finite and not negative; an unknown value is left out, never
sent as 0.

Unknown fields are kept aside (``model_extra``) so the adapters can report them
(a warning per record); the engine never reads them.
"""

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "EVENT_TYPES",
    "ActorRole",
    "AdverseEventCategory",
    "AlarmKind",
    "CanonicalEvent",
    "DeviceKind",
    "Event",
    "Indication",
    "Phase",
    "Setting",
    "StopReason",
    "event_adapter",
    "parse_event",
    "validate_event_json",
]

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
"""A finite, non-negative number. JSON integers are accepted; strings are not."""

Text = Annotated[str, Field(min_length=1, max_length=4096, strict=True)]
"""A non-empty string, short enough to stay far below durable-rules' 64 KB limit."""


def _utc_representable(value: datetime) -> datetime:
    """Refuse a time whose UTC instant falls outside years 1 to 9999.

    ``0001-01-01T00:30:00+01:00`` parses, but its instant is in year 0: the
    engine, the replay's sort and every finding's UTC time would overflow on it
    later, far from the record that caused it. So it is refused here, at the edge.
    """
    if 1 < value.year < 9999:  # an offset moves the instant by less than a day
        return value
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "time_out_of_range", "the time in UTC falls outside the years 1 to 9999"
        ) from None
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(_utc_representable)]
"""A timestamp with an offset whose UTC instant a datetime can hold."""


class ActorRole(StrEnum):
    """Who acted. The first five are healthcare professionals."""

    NURSE = "nurse"
    PHYSICIAN = "physician"
    NURSE_PRACTITIONER = "nurse_practitioner"
    PHARMACIST = "pharmacist"
    HOME_HEALTH_NURSE = "home_health_nurse"
    CAREGIVER = "caregiver"
    PATIENT = "patient"


class DeviceKind(StrEnum):
    VOLUMETRIC = "volumetric"
    SYRINGE = "syringe"
    AMBULATORY = "ambulatory"
    ELASTOMERIC = "elastomeric"
    GRAVITY = "gravity"


class StopReason(StrEnum):
    USER = "user"
    ALARM = "alarm"
    OCCLUSION = "occlusion"
    AIR_IN_LINE = "air_in_line"
    POWER = "power"
    OTHER = "other"


class AlarmKind(StrEnum):
    OCCLUSION = "occlusion"
    AIR_IN_LINE = "air_in_line"
    DOOR_OPEN = "door_open"
    BATTERY_LOW = "battery_low"
    END_OF_INFUSION = "end_of_infusion"
    MALFUNCTION = "malfunction"
    OTHER = "other"


class Indication(StrEnum):
    RELAPSED_REFRACTORY = "relapsed_refractory"
    MRD_POSITIVE = "mrd_positive"
    CONSOLIDATION = "consolidation"


class Phase(StrEnum):
    INDUCTION = "induction"
    CONSOLIDATION = "consolidation"
    CONTINUED = "continued"


class Setting(StrEnum):
    INPATIENT = "inpatient"
    OBSERVATION = "observation"
    OUTPATIENT = "outpatient"
    HOME = "home"


class AdverseEventCategory(StrEnum):
    CRS = "crs"
    NEUROTOXICITY = "neurotoxicity"
    SEIZURE = "seizure"
    INFECTION = "infection"
    TUMOR_LYSIS = "tumor_lysis"
    OTHER = "other"


class Event(BaseModel):
    """The envelope every canonical event carries."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    event_id: Text
    type: str
    ts: EventTime
    patient_id: Text
    source: Text | None = None
    pump_id: Text | None = None
    channel: Text = "A"
    actor_role: ActorRole | None = None

    @property
    def unknown_fields(self) -> tuple[str, ...]:
        """Fields the producer sent that version 1 does not define (never used)."""
        return tuple(sorted(self.model_extra or ()))


class _PumpEvent(Event):
    pump_id: Text


class PumpRegistered(_PumpEvent):
    type: Literal["pump.registered"]
    device_kind: DeviceKind
    lockable: StrictBool
    alarms: StrictBool
    model: Text | None = None


class InfusionStarted(_PumpEvent):
    type: Literal["pump.infusion_started"]
    drug: Text
    rate_ml_h: NonNegative
    dose_mcg_day: NonNegative | None = None
    bag_id: Text | None = None
    vtbi_ml: NonNegative | None = None
    concentration_mcg_ml: NonNegative | None = None


class InfusionStopped(_PumpEvent):
    type: Literal["pump.infusion_stopped"]
    reason: StopReason


class InfusionResumed(_PumpEvent):
    type: Literal["pump.infusion_resumed"]
    rate_ml_h: NonNegative | None = None


class InfusionCompleted(_PumpEvent):
    type: Literal["pump.infusion_completed"]
    bag_id: Text | None = None
    volume_infused_ml: NonNegative | None = None


class RateChanged(_PumpEvent):
    type: Literal["pump.rate_changed"]
    rate_ml_h: NonNegative
    dose_mcg_day: NonNegative | None = None


class Bolus(_PumpEvent):
    type: Literal["pump.bolus"]
    volume_ml: NonNegative


class PumpFlush(_PumpEvent):
    type: Literal["pump.flush"]
    volume_ml: NonNegative


class Prime(_PumpEvent):
    type: Literal["pump.prime"]
    volume_ml: NonNegative


class BagChanged(_PumpEvent):
    type: Literal["pump.bag_changed"]
    bag_id: Text
    previous_bag_id: Text | None = None


class PumpAlarm(_PumpEvent):
    type: Literal["pump.alarm"]
    alarm: AlarmKind
    cleared: StrictBool | None = None


class KeypadUnlocked(_PumpEvent):
    type: Literal["pump.keypad_unlocked"]


class KeypadLocked(_PumpEvent):
    type: Literal["pump.keypad_locked"]


class ConnectionLost(_PumpEvent):
    type: Literal["pump.connection_lost"]


class ConnectionRestored(_PumpEvent):
    type: Literal["pump.connection_restored"]


class BagDispensed(Event):
    type: Literal["bag.dispensed"]
    bag_id: Text
    drug: Text
    dose_mcg_day: NonNegative
    duration_h: Literal[24, 48, 72, 96, 168]
    rate_ml_h: NonNegative
    volume_ml: NonNegative
    preservative: StrictBool | None = None
    expires_at: EventTime | None = None


class PatientRegistered(Event):
    type: Literal["patient.registered"]
    weight_kg: NonNegative
    indication: Indication
    height_cm: NonNegative | None = None
    bsa_m2: NonNegative | None = None
    birth_date: date | None = None


class WeightRecorded(Event):
    type: Literal["patient.weight_recorded"]
    weight_kg: NonNegative
    bsa_m2: NonNegative | None = None


class CycleOrdered(Event):
    type: Literal["cycle.ordered"]
    cycle: Annotated[int, Field(ge=1, le=99, strict=True)]
    phase: Phase
    dose_mcg_day: NonNegative | None = None


class EncounterAdmitted(Event):
    type: Literal["encounter.admitted"]
    setting: Setting
    location: Text | None = None


class EncounterTransferred(Event):
    type: Literal["encounter.transferred"]
    setting: Setting
    location: Text | None = None


class EncounterDischarged(Event):
    type: Literal["encounter.discharged"]


class NursingSupervision(Event):
    type: Literal["nursing.supervision"]
    actor_role: ActorRole


class NursingBagChange(Event):
    type: Literal["nursing.bag_change"]
    bag_id: Text
    actor_role: ActorRole
    line_flushed: StrictBool | None = None


class NursingLineFlush(Event):
    type: Literal["nursing.line_flush"]
    volume_ml: NonNegative
    aspirated_first: StrictBool | None = None


class MedicationAdministered(Event):
    type: Literal["medication.administered"]
    drug: Text
    dose_mg: NonNegative
    route: Text | None = None


class AdverseEvent(Event):
    type: Literal["clinical.adverse_event"]
    category: AdverseEventCategory
    grade: Annotated[int, Field(ge=0, le=5, strict=True)]
    term: Text | None = None


class OrderHold(Event):
    type: Literal["order.hold"]
    reason: Text


class OrderReleased(Event):
    type: Literal["order.released"]


class OrderDiscontinued(Event):
    type: Literal["order.discontinued"]
    reason: Text


CanonicalEvent = Annotated[
    PumpRegistered
    | InfusionStarted
    | InfusionStopped
    | InfusionResumed
    | InfusionCompleted
    | RateChanged
    | Bolus
    | PumpFlush
    | Prime
    | BagChanged
    | PumpAlarm
    | KeypadUnlocked
    | KeypadLocked
    | ConnectionLost
    | ConnectionRestored
    | BagDispensed
    | PatientRegistered
    | WeightRecorded
    | CycleOrdered
    | EncounterAdmitted
    | EncounterTransferred
    | EncounterDischarged
    | NursingSupervision
    | NursingBagChange
    | NursingLineFlush
    | MedicationAdministered
    | AdverseEvent
    | OrderHold
    | OrderReleased
    | OrderDiscontinued,
    Field(discriminator="type"),
]
"""Any canonical event; ``type`` picks the model, an unknown ``type`` is rejected."""

event_adapter: TypeAdapter[Any] = TypeAdapter(CanonicalEvent)
"""Validates one event from a dict (``validate_python``) or JSON text (``validate_json``)."""

validate_event_json: Callable[[str | bytes], Any] = event_adapter.validator.validate_json
"""``event_adapter.validate_json`` without the adapter's Python wrapper (about a sixth of
the time a line's validation takes), for the readers that validate every line."""


def parse_event(raw: str | bytes | dict[str, Any]) -> Event:
    """One canonical event from JSON text or a JSON-shaped dict; ValidationError if invalid.

    A dict goes through JSON, so it is read exactly as a line of a file would be
    (strict models take times and enumerations as JSON text only).
    """
    text = json.dumps(raw) if isinstance(raw, dict) else raw
    return event_adapter.validate_json(text)  # type: ignore[no-any-return]


def _types() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            annotation = sub.model_fields["type"].annotation
            args = getattr(annotation, "__args__", ())
            if args and isinstance(args[0], str):
                found[args[0]] = sub
    return dict(sorted(found.items()))


EVENT_TYPES: dict[str, type[Event]] = _types()
"""Every canonical ``type`` and the model that validates it."""
