"""Feed configuration: what an adapter may not guess, written down once per site.

A pump rarely knows its patient and a timestamp often lacks its offset; both are
answered here, explicitly, or the record is rejected. Loaded from YAML so a site
can change it without code.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pumpguard.adapters.timestamps import check_zone_name, zone_named
from pumpguard.engine.errors import BindingError
from pumpguard.engine.events import Setting
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["AdapterConfig", "Binder", "PumpBinding"]


class PumpBinding(BaseModel):
    """One pump on one patient for a time window (open ends allowed)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    pump_id: str = Field(min_length=1)
    patient_id: str = Field(min_length=1)
    valid_from: AwareDatetime | None = Field(default=None, alias="from")
    valid_to: AwareDatetime | None = Field(default=None, alias="to")

    def covers(self, pump_id: str, ts: datetime) -> bool:
        """True when this binding names the pump at time ``ts`` (``to`` is exclusive)."""
        if pump_id != self.pump_id:
            return False
        if self.valid_from is not None and ts < self.valid_from:
            return False
        return not (self.valid_to is not None and ts >= self.valid_to)


_DEFAULT_DRUGS: dict[str, list[str]] = {
    # Codes are matched as "system|code" or bare code; names case-insensitively on
    # text/display. ATC L01FX07 (L01XC19 before 2022) is blinatumomab, H02AB02 dexamethasone.
    "blinatumomab": ["L01FX07", "L01XC19", "blinatumomab", "blincyto"],
    "dexamethasone": ["H02AB02", "dexamethasone"],
}

_DEFAULT_PV1_CLASSES: dict[str, Setting] = {"I": Setting.INPATIENT, "O": Setting.OUTPATIENT}
"""PV1-2 patient class → setting. Only the unambiguous two; sites add the rest."""

_DEFAULT_FHIR_CLASSES: dict[str, Setting] = {
    "IMP": Setting.INPATIENT,
    "ACUTE": Setting.INPATIENT,
    "NONAC": Setting.INPATIENT,
    "OBSENC": Setting.OBSERVATION,
    "AMB": Setting.OUTPATIENT,
    "HH": Setting.HOME,
}
"""FHIR v3-ActCode encounter class → setting (EMER, PRENC, VR... must be configured)."""


_DEFAULT_AE_TERMS: dict[str, list[str]] = {
    "crs": ["cytokine release syndrome", "CRS"],
    "neurotoxicity": ["neurotoxicity", "neurologic toxicity", "ICANS"],
    "seizure": ["seizure"],
    "tumor_lysis": ["tumor lysis", "tumour lysis"],
    "infection": ["infection", "sepsis"],
}


def _check_components(value: list[int]) -> list[int]:
    if not value:
        msg = "pump_id_components needs at least one OBX-18 component (1 to 4)"
        raise ValueError(msg)
    if any(not 1 <= c <= 4 for c in value) or len(set(value)) != len(value):
        msg = f"pump_id_components {value} must list distinct OBX-18 components 1 to 4"
        raise ValueError(msg)
    return value


class AdapterConfig(BaseModel):
    """Everything a feed must state rather than let an adapter guess."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_zone: str | None = None
    """IANA zone for timestamps sent without an offset; if absent, such timestamps are rejected."""
    bindings: list[PumpBinding] = Field(default_factory=list)
    csv_mappings: list[Path] = Field(default_factory=list)
    """CSV column-mapping YAML files; relative paths are resolved against the config file."""
    drugs: dict[str, list[str]] = Field(default_factory=lambda: dict(_DEFAULT_DRUGS))
    """Canonical drug name → FHIR codes ("system|code" or "code") and names that mean it."""
    infusion_drug: str = "blinatumomab"
    """The infused drug of this feed: its FHIR MedicationAdministration becomes pump events
    (a start with rate and dose); every other drug is a medication given (premedication)."""
    pv1_patient_class: dict[str, Setting] = Field(
        default_factory=lambda: dict(_DEFAULT_PV1_CLASSES)
    )
    fhir_encounter_class: dict[str, Setting] = Field(
        default_factory=lambda: dict(_DEFAULT_FHIR_CLASSES)
    )
    adverse_event_terms: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in _DEFAULT_AE_TERMS.items()}
    )
    """Reaction category → codes and names (substring, case-insensitive) that mean it."""
    patient_identifier_type: str | None = None
    """PID-3 / FHIR identifier type to use (e.g. "MR"); absent means the first repetition."""
    hl7_parser: str = "fast"
    """"fast" (split-on-demand) or "python-hl7" (hl7.parse; ~10x slower, same events)."""
    pump_id_components: list[int] = Field(default_factory=lambda: [1, 3])
    """HL7 OBX-18 components that name a pump, in order: the first non-empty one is its id.

    OBX-18 is ``entity id^namespace^universal id^type``. IHE makes the EUI-64 in
    component 3 the identity, but B. Braun SpacePlus sends its serial in component 1
    (``P2449^^0012210000000000^EUI-64``) and the same placeholder EUI-64 on every
    pump; reading component 1 first keeps distinct pumps distinct. A feed whose
    component 1 is not unique per pump sets ``[3]``.
    """
    pump_id_components_by_sender: dict[str, list[int]] = Field(default_factory=dict)
    """Per sending application: MSH-3 (component 1), else MSH-4, → its own pump_id_components."""

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        return check_zone_name(value)

    @field_validator("hl7_parser")
    @classmethod
    def _parser_known(cls, value: str) -> str:
        if value not in ("fast", "python-hl7"):
            msg = f"hl7_parser must be 'fast' or 'python-hl7', not {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("pump_id_components")
    @classmethod
    def _components_valid(cls, value: list[int]) -> list[int]:
        return _check_components(value)

    @field_validator("pump_id_components_by_sender")
    @classmethod
    def _sender_components_valid(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        for sender, components in value.items():
            try:
                _check_components(components)
            except ValueError as exc:
                msg = f"pump_id_components_by_sender[{sender!r}]: {exc}"
                raise ValueError(msg) from exc
        return value

    def pump_id_components_for(self, *senders: str) -> list[int]:
        """OBX-18 components for the first sender the per-sender table names, else the default."""
        for sender in senders:
            if sender and sender in self.pump_id_components_by_sender:
                return self.pump_id_components_by_sender[sender]
        return self.pump_id_components

    @model_validator(mode="after")
    def _bindings_do_not_overlap(self) -> AdapterConfig:
        # Two patients on one pump at the same time would make every event a guess.
        for i, a in enumerate(self.bindings):
            for b in self.bindings[i + 1 :]:
                if a.pump_id != b.pump_id or a.patient_id == b.patient_id:
                    continue
                a_end, b_end = a.valid_to, b.valid_to
                a_start, b_start = a.valid_from, b.valid_from
                if (a_end is None or b_start is None or b_start < a_end) and (
                    b_end is None or a_start is None or a_start < b_end
                ):
                    msg = (
                        f"pump {a.pump_id} is bound to both {a.patient_id} and "
                        f"{b.patient_id} over an overlapping window"
                    )
                    raise ValueError(msg)
        return self

    @property
    def zone(self) -> ZoneInfo | None:
        """The configured feed zone, or None (timestamps without offset are then rejected)."""
        return zone_named(self.time_zone)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AdapterConfig:
        """Load a config file; relative CSV mapping paths are taken from its folder."""
        path = Path(path)
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            msg = f"{path}: adapter config must be a YAML mapping"
            raise ValueError(msg)
        mappings = data.get("csv_mappings") or []
        if isinstance(mappings, str):
            mappings = [mappings]
        data["csv_mappings"] = [
            str(p if Path(p).is_absolute() else path.parent / p) for p in mappings
        ]
        return cls.model_validate(data)

    def drug_name(self, codes: list[str], names: list[str]) -> str | None:
        """The canonical drug a set of codes or names denotes, or None."""
        lowered = [n.strip().lower() for n in names if n]
        for drug, keys in self.drugs.items():
            for key in keys:
                if key in codes:
                    return drug
                low = key.lower()
                if any(low == n or n.startswith(low + " ") for n in lowered):
                    return drug
        return None


def _short(text: str, limit: int = 60) -> str:
    # Ids come from the input: a damaged one must not flood a reject reason.
    return text if len(text) <= limit else text[:limit] + "..."


class Binder:
    """Ties pump events to patients: configuration first, then association events.

    The message's own patient (PID-3) is used when it names one; if the
    configuration names another patient for that pump at that time, that is a
    conflict and is rejected rather than resolved by preference.
    """

    def __init__(self, config: AdapterConfig) -> None:
        self._bindings = config.bindings
        self._associations: dict[str, list[tuple[datetime, str | None]]] = {}

    def associate(self, pump_id: str, patient_id: str | None, ts: datetime) -> None:
        """Record an association event (None ends the association)."""
        self._associations.setdefault(pump_id, []).append((ts, patient_id))

    def configured(self, pump_id: str, ts: datetime) -> str | None:
        """The configured patient for the pump at ``ts``, or None."""
        for b in self._bindings:
            if b.covers(pump_id, ts):
                return b.patient_id
        return None

    def pump_for(self, patient_id: str, ts: datetime) -> str | None:
        """The one pump configured on a patient at ``ts`` (None if none or several)."""
        pumps = {b.pump_id for b in self._bindings if b.patient_id == patient_id}
        hits = [p for p in pumps if self.configured(p, ts) == patient_id]
        return hits[0] if len(hits) == 1 else None

    def resolve(self, pump_id: str, ts: datetime, named: str | None, why_unnamed: str) -> str:
        """The patient for a pump event, or a BindingError saying why there is none."""
        configured = self.configured(pump_id, ts)
        if named is not None:
            if configured is not None and configured != named:
                msg = (
                    f"pump {_short(pump_id)} reports patient {_short(named)} but the "
                    f"configuration binds it to {configured} at {ts.isoformat()}; conflict not "
                    "resolved by guessing"
                )
                raise BindingError(msg)
            return named
        if configured is not None:
            return configured
        associated: str | None = None
        for when, patient in self._associations.get(pump_id, ()):
            if when <= ts:
                associated = patient
        if associated is not None:
            return associated
        msg = (
            f"pump {_short(pump_id)} is not bound to a patient at {ts.isoformat()}: "
            f"{why_unnamed}, and no configured binding or association event covers that time"
        )
        raise BindingError(msg)
