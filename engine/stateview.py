"""The registry of derived state: every ``state.*`` field a rule can read.

Kept apart from :mod:`.state` (which computes the values) so the pack compiler
and the documentation read one declared list: :class:`StateView` is the typed
record the engine hands to durable-rules, and :data:`STATE_FIELDS` is generated
from its annotations, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, TypedDict, get_args, get_type_hints

from .expr import Kind

__all__ = ["STATE_FIELDS", "StateView", "state_fields"]


class StateView(TypedDict, total=False):
    """What rules read as ``state.*``: every field optional (absent means unknown).

    Each field is annotated with its documentation; :data:`STATE_FIELDS` (the
    registry the pack compiler type-checks against) is generated from here, so the
    documented list and the state the engine builds cannot drift apart.
    """

    # patient
    registered: Annotated[bool, "a patient.registered event has been seen"]
    weight_kg: Annotated[float, "last recorded weight"]
    bsa_m2: Annotated[
        float,
        "body surface area: the last recorded, else derived from height and weight (Mosteller)",
    ]
    bsa_derived: Annotated[bool, "bsa_m2 was derived from height and weight, not recorded"]
    bsa_source: Annotated[
        str,
        "where bsa_m2 comes from, in words (recorded, or derived by Mosteller)",
    ]
    height_cm: Annotated[float, "recorded height"]
    indication: Annotated[str, "relapsed_refractory, mrd_positive or consolidation"]
    age_years: Annotated[
        float,
        "age in whole years on the event's date (absent without a birth date)",
    ]
    setting: Annotated[str, "care setting from the last encounter event, or discharged"]
    hospitalized: Annotated[bool, "the setting is one of params.hospital_settings"]
    # delivery
    drug_running: Annotated[bool, "after this event, some channel delivers the drug"]
    was_running: Annotated[bool, "before this event, some channel delivered the drug"]
    is_drug: Annotated[bool, "the event concerns the drug: its channel, or a weight while it runs"]
    channel_has_drug: Annotated[bool, "the event's channel holds the drug (running or not)"]
    restart: Annotated[bool, "this start or resume ends an interruption within a cycle"]
    interruption_h: Annotated[float, "hours without delivery that this start or resume ends"]
    stopped_h: Annotated[float, "hours since delivery stopped, while it is stopped"]
    rate_ml_h: Annotated[float, "programmed rate on the event's channel"]
    dose_mcg_day: Annotated[float, "running dose: the pump's programmed dose, else the bag's"]
    run_started_h: Annotated[float, "hours since the current uninterrupted delivery began"]
    # cycle
    cycle: Annotated[float, "current cycle number"]
    cycle_start: Annotated[bool, "this event begins a cycle"]
    cycle_inferred: Annotated[bool, "the cycle number was inferred (no cycle.ordered)"]
    phase: Annotated[str, "phase of the ordered cycle"]
    ordered_dose_mcg_day: Annotated[float, "dose on the cycle's order"]
    order_pending: Annotated[bool, "a cycle has been ordered and not yet started"]
    pending_cycle: Annotated[float, "the ordered cycle not yet started"]
    cycle_elapsed_h: Annotated[float, "calendar hours since the cycle's first start"]
    cycle_day: Annotated[float, "calendar day of the cycle (day 1 = first 24 h)"]
    infusion_h: Annotated[float, "cumulative infusion hours in the cycle"]
    infusion_day: Annotated[float, "infusion day of the cycle (day 1 = first 24 h of infusion)"]
    tfi_h: Annotated[float, "at a cycle start: hours since the previous cycle's last stop"]
    prev_cycle_infusion_h: Annotated[
        float,
        "at a cycle start: infusion hours of the previous cycle",
    ]
    prev_phase: Annotated[str, "at a cycle start: phase of the previous cycle"]
    prev_gap_h: Annotated[float, "at a cycle start: the longest interruption in the previous cycle"]
    max_gap_h: Annotated[float, "the longest interruption so far in this cycle"]
    # people and medicines
    supervision_age_h: Annotated[
        float,
        "hours since a healthcare professional last documented supervision",
    ]
    professional: Annotated[bool, "the event's actor_role is a healthcare professional"]
    # pumps
    pump_registered: Annotated[bool, "the event's pump has been registered"]
    pump_kind: Annotated[str, "device_kind of the event's pump"]
    pump_lockable: Annotated[bool, "the event's pump can be locked"]
    pump_alarms: Annotated[bool, "the event's pump has alarms"]
    connection_lost_h: Annotated[float, "hours since the middleware lost the event's pump"]
    # bags
    bag_id: Annotated[str, "the bag on this event, or hung on its channel"]
    bag_dispensed: Annotated[bool, "the bag on this event (or channel) has a pharmacy label"]
    bag_is_drug: Annotated[bool, "the bag's label names the drug"]
    bag_rate_ml_h: Annotated[float, "rate on the bag's label"]
    bag_dose_mcg_day: Annotated[float, "dose on the bag's label"]
    bag_duration_h: Annotated[float, "labelled duration of the bag"]
    bag_volume_ml: Annotated[float, "labelled volume of the bag"]
    bag_preservative: Annotated[bool, "the bag holds a preservative"]
    bag_age_h: Annotated[float, "hours since the bag first started infusing"]
    # the drug's current bag and dose, whatever channel the event is on (also at deadlines)
    drug_bag_id: Annotated[str, "the bag on the channel that delivers (or last delivered) the drug"]
    drug_bag_age_h: Annotated[float, "hours since that bag first started (pauses count)"]
    drug_bag_duration_h: Annotated[float, "that bag's labelled duration"]
    running_dose_mcg_day: Annotated[
        float,
        "dose of the drug being delivered: programmed, else the bag's",
    ]
    prev_dose_mcg_day: Annotated[float, "the dose last delivered in this cycle before this event"]


_KINDS: dict[type, Kind] = {float: "num", bool: "bool", str: "str"}


def _registry() -> dict[str, tuple[Kind, str]]:
    hints = get_type_hints(StateView, include_extras=True)
    return {name: (_KINDS[get_args(h)[0]], str(get_args(h)[1])) for name, h in hints.items()}


STATE_FIELDS: dict[str, tuple[Kind, str]] = _registry()
"""Every ``state.*`` field: its kind and its documentation (generated from :class:`StateView`)."""


def state_fields(premed_drugs: list[str]) -> dict[str, tuple[Kind, str]]:
    """The registry, with one ``premed_<drug>_mg`` field per tracked premedication."""
    fields = dict(STATE_FIELDS)
    for drug in premed_drugs:
        fields[f"premed_{drug}_mg"] = (
            "num",
            f"mg of {drug} given within params.premedication_window_h before this event",
        )
    return fields
