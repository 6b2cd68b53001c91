"""Per-patient derived state: the facts rules read as ``state.*``.

The engine computes these once, generally, for every rule: what is running,
for how long, in which cycle and day, where the patient is, what was given and
who was there. It makes no clinical decision; the thresholds it needs to keep
count (what counts as the drug, as a hospital setting, as a professional, when
an untracked gap begins a new cycle) come from the pack's parameters.

Nothing here grows with the number of events: a patient keeps a bounded
medication window, a bounded set of recent bags and one record per pump channel.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from .events import Event
from .gate import rule_value
from .stateview import STATE_FIELDS, StateView, state_fields

__all__ = [
    "ALL_GROUPS",
    "GROUP_OF",
    "STATE_FIELDS",
    "Passing",
    "PatientState",
    "StateConfig",
    "StateView",
    "groups_for",
    "state_fields",
]

HOUR = 3600.0
MAX_BAGS = 32
MAX_PUMPS = 16

G_PATIENT = 1 << 0
G_PASSING = 1 << 1
G_RUN = 1 << 2
G_CYCLE = 1 << 3
G_SUPERVISION = 1 << 4
G_DOSE = 1 << 5
G_DRUG_BAG = 1 << 6
G_PREMED = 1 << 7
G_ACTOR = 1 << 8
G_PUMP = 1 << 9
G_CHANNEL = 1 << 10
G_BAG = 1 << 11
ALL_GROUPS = (1 << 12) - 1
_G_EVENT = G_ACTOR | G_PUMP | G_CHANNEL | G_BAG

_GROUP_FIELDS: dict[int, tuple[str, ...]] = {
    0: (
        "registered",
        "hospitalized",
        "drug_running",
        "was_running",
        "cycle_start",
        "restart",
        "cycle_inferred",
        "order_pending",
    ),
    G_PATIENT: (
        "weight_kg",
        "bsa_m2",
        "bsa_derived",
        "bsa_source",
        "height_cm",
        "indication",
        "setting",
        "age_years",
    ),
    G_PASSING: ("interruption_h", "tfi_h", "prev_cycle_infusion_h", "prev_gap_h", "prev_phase"),
    G_RUN: ("stopped_h", "run_started_h", "pending_cycle"),
    G_CYCLE: (
        "cycle",
        "cycle_elapsed_h",
        "cycle_day",
        "infusion_h",
        "infusion_day",
        "max_gap_h",
        "phase",
        "ordered_dose_mcg_day",
    ),
    G_SUPERVISION: ("supervision_age_h",),
    G_DOSE: ("running_dose_mcg_day", "prev_dose_mcg_day"),
    G_DRUG_BAG: ("drug_bag_id", "drug_bag_duration_h", "drug_bag_age_h"),
    # What the event's actor, pump, channel and bag say: types read few of them (a
    # completed infusion reads is_drug alone), so each part is computed only where read.
    G_ACTOR: ("professional",),
    G_PUMP: ("pump_registered", "pump_kind", "pump_lockable", "pump_alarms", "connection_lost_h"),
    G_CHANNEL: ("channel_has_drug", "is_drug", "rate_ml_h", "dose_mcg_day"),
    G_BAG: (
        "bag_id",
        "bag_dispensed",
        "bag_is_drug",
        "bag_rate_ml_h",
        "bag_dose_mcg_day",
        "bag_duration_h",
        "bag_volume_ml",
        "bag_preservative",
        "bag_age_h",
    ),
}
"""Which group of :meth:`PatientState.view` computes each ``state.*`` field (0: always)."""

GROUP_OF: dict[str, int] = {f: g for g, names in _GROUP_FIELDS.items() for f in names}


def groups_for(fields: Iterable[str]) -> int:
    """The view groups that hold ``fields`` (``premed_<drug>_mg`` are the premedication group).

    An unknown name takes every group: a field this table does not place is
    never left out of a view.
    """
    mask = 0
    for name in fields:
        if name.startswith("premed_"):
            mask |= G_PREMED
        elif name in GROUP_OF:
            mask |= GROUP_OF[name]
        else:
            return ALL_GROUPS
    return mask


@dataclass(frozen=True, slots=True)
class StateConfig:
    """The pack parameters that derivations need (never clinical verdicts)."""

    drug_names: tuple[str, ...]
    hospital_settings: frozenset[str]
    professional_roles: frozenset[str]
    new_cycle_gap_h: float
    premed_drugs: tuple[str, ...]
    premed_window_h: float

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> StateConfig:
        return cls(
            drug_names=tuple(str(n).lower() for n in p["drug_names"]),
            hospital_settings=frozenset(p["hospital_settings"]),
            professional_roles=frozenset(p["professional_roles"]),
            new_cycle_gap_h=float(p["new_cycle_gap_h"]),
            premed_drugs=tuple(str(n).lower() for n in p["premedication_drugs"]),
            premed_window_h=float(p["premedication_window_h"]),
        )

    def is_drug(self, name: str | None) -> bool:
        if not name:
            return False
        low = name.lower()
        return any(n in low for n in self.drug_names)


@dataclass(slots=True)
class Passing:
    """What applying one event changed in passing, read by :meth:`PatientState.view`."""

    was_running: bool
    prev_dose_mcg_day: float | None = None
    is_drug: bool | None = None
    bag_id: str | None = None
    cycle_start: bool = False
    restart: bool = False
    interruption_h: float | None = None
    tfi_h: float | None = None
    prev_cycle_infusion_h: float | None = None
    prev_gap_h: float | None = None
    prev_phase: str | None = None


@dataclass(slots=True)
class _Channel:
    has_drug: bool = False
    delivering: bool = False
    rate_ml_h: float | None = None
    dose_mcg_day: float | None = None
    bag_id: str | None = None


@dataclass(slots=True)
class _Bag:
    is_drug: bool
    rate_ml_h: float
    dose_mcg_day: float
    duration_h: float
    volume_ml: float
    preservative: bool | None
    first_start: float | None = None


@dataclass(slots=True)
class _Pump:
    kind: str | None = None
    lockable: bool | None = None
    alarms: bool | None = None
    lost_since: float | None = None


@dataclass(slots=True)
class PatientState:
    """Everything the engine remembers about one patient, bounded in size."""

    patient_id: str
    cfg: StateConfig
    registered: bool = False
    weight_kg: float | None = None
    bsa_m2: float | None = None
    height_cm: float | None = None
    indication: str | None = None
    birth_date: date | None = None
    setting: str | None = None
    channels: dict[tuple[str, str], _Channel] = field(default_factory=dict)
    pumps: OrderedDict[str, _Pump] = field(default_factory=OrderedDict)
    bags: OrderedDict[str, _Bag] = field(default_factory=OrderedDict)
    delivering: bool = False
    run_since: float | None = None
    last_stop: float | None = None
    cycle: int | None = None
    cycle_start_ts: float | None = None
    cycle_infusion_s: float = 0.0
    cycle_inferred: bool = False
    cycle_max_gap_s: float = 0.0
    phase: str | None = None
    ordered_dose: float | None = None
    ordered_mode: bool = False
    pending: tuple[int, str, float | None] | None = None
    last_supervision: float | None = None
    last_dose: float | None = None
    meds: deque[tuple[float, str, float]] = field(default_factory=deque)
    facts: dict[str, Any] = field(default_factory=dict)
    episodes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """The open episode of each finding group: the key it was last raised with."""
    fired_until: float = float("-inf")
    """The latest due time of this patient's deadlines that have fired (the live service's
    test of whether an event arriving now is still in order for this patient)."""

    # -- applying events ----------------------------------------------------
    def apply(self, event: Event, ts: float) -> Passing:
        """Apply one event; return what it changed in passing (for :meth:`view`)."""
        t = Passing(was_running=self.delivering)
        if event.type.startswith("pump."):
            t.prev_dose_mcg_day = self.last_dose
        kind = event.type
        if kind.startswith("pump."):
            self._pump_event(event, ts, t)
            dose = self._running_dose()
            if dose is not None:
                self.last_dose = dose
        elif kind == "bag.dispensed":
            self._remember_bag(event)
        elif kind in ("patient.registered", "patient.weight_recorded"):
            self.registered = self.registered or kind == "patient.registered"
            self.weight_kg = getattr(event, "weight_kg", self.weight_kg)
            self.bsa_m2 = getattr(event, "bsa_m2", None) or self.bsa_m2
            self.height_cm = getattr(event, "height_cm", None) or self.height_cm
            self.indication = str(getattr(event, "indication", None) or self.indication or "")
            self.indication = self.indication or None
            self.birth_date = getattr(event, "birth_date", None) or self.birth_date
        elif kind == "cycle.ordered":
            self.pending = (event.cycle, str(event.phase), event.dose_mcg_day)  # type: ignore[attr-defined]
            self.ordered_mode = True
        elif kind in ("encounter.admitted", "encounter.transferred"):
            self.setting = str(event.setting)  # type: ignore[attr-defined]
        elif kind == "encounter.discharged":
            self.setting = "discharged"
        elif kind == "nursing.supervision":
            if event.actor_role in self.cfg.professional_roles:
                self.last_supervision = ts
        elif kind == "medication.administered":
            drug = event.drug.lower()  # type: ignore[attr-defined]
            for name in self.cfg.premed_drugs:
                if name in drug:
                    self.meds.append((ts, name, float(event.dose_mg)))  # type: ignore[attr-defined]
        elif kind == "nursing.bag_change":
            t.bag_id = event.bag_id  # type: ignore[attr-defined]
        return t

    def _remember_bag(self, event: Any) -> None:
        self.bags[event.bag_id] = _Bag(
            is_drug=self.cfg.is_drug(event.drug),
            rate_ml_h=event.rate_ml_h,
            dose_mcg_day=event.dose_mcg_day,
            duration_h=float(event.duration_h),
            volume_ml=event.volume_ml,
            preservative=event.preservative,
        )
        self.bags.move_to_end(event.bag_id)
        while len(self.bags) > MAX_BAGS:
            self.bags.popitem(last=False)

    def _drug_channel(self) -> _Channel | None:
        """The channel delivering the drug, else the last one that held it."""
        held = None
        for ch in self.channels.values():
            if ch.has_drug:
                if ch.delivering:
                    return ch
                held = ch
        return held

    def _running_dose(self) -> float | None:
        ch = self._drug_channel()
        if ch is None or not ch.delivering:
            return None
        if ch.dose_mcg_day is not None:
            return ch.dose_mcg_day
        bag = self.bags.get(ch.bag_id) if ch.bag_id else None
        return bag.dose_mcg_day if bag is not None else None

    def _pump(self, pump_id: str) -> _Pump:
        pump = self.pumps.get(pump_id)
        if pump is None:
            pump = self.pumps[pump_id] = _Pump()
            while len(self.pumps) > MAX_PUMPS:
                old, _ = self.pumps.popitem(last=False)
                for key in [k for k in self.channels if k[0] == old]:
                    del self.channels[key]
        return pump

    def _pump_event(self, event: Any, ts: float, t: Passing) -> None:
        key = (event.pump_id, event.channel)
        pump = self._pump(event.pump_id)
        ch = self.channels.get(key)
        if ch is None:
            ch = self.channels[key] = _Channel()
        kind = event.type
        if kind == "pump.infusion_started":
            ch.has_drug = self.cfg.is_drug(event.drug)
            ch.delivering = True
            ch.rate_ml_h = event.rate_ml_h
            ch.dose_mcg_day = event.dose_mcg_day
            if event.bag_id:
                ch.bag_id = event.bag_id
            bag = self.bags.get(ch.bag_id) if ch.bag_id else None
            if bag is not None and bag.first_start is None and ch.has_drug:
                bag.first_start = ts
        elif kind == "pump.infusion_resumed":
            ch.delivering = True
            if event.rate_ml_h is not None:
                ch.rate_ml_h = event.rate_ml_h
            bag = self.bags.get(ch.bag_id) if ch.bag_id else None
            if bag is not None and bag.first_start is None and ch.has_drug:
                bag.first_start = ts  # a bag changed while stopped starts its time here
        elif kind in ("pump.infusion_stopped", "pump.infusion_completed"):
            ch.delivering = False
        elif kind == "pump.rate_changed":
            ch.rate_ml_h = event.rate_ml_h
            if event.dose_mcg_day is not None:
                ch.dose_mcg_day = event.dose_mcg_day
        elif kind == "pump.bag_changed":
            # From the swap on, the new bag's label is what runs: its dose until the pump
            # reports a programmed one, and its hang time from now if it swaps in running.
            ch.bag_id = event.bag_id
            ch.dose_mcg_day = None
            bag = self.bags.get(ch.bag_id)
            if bag is not None and bag.first_start is None and ch.has_drug and ch.delivering:
                bag.first_start = ts
        elif kind == "pump.registered":
            pump.kind = str(event.device_kind)
            pump.lockable = event.lockable
            pump.alarms = event.alarms
        elif kind == "pump.connection_lost":
            pump.lost_since = pump.lost_since if pump.lost_since is not None else ts
        elif kind == "pump.connection_restored":
            pump.lost_since = None
        t.is_drug = ch.has_drug
        t.bag_id = ch.bag_id
        now = any(c.delivering and c.has_drug for c in self.channels.values())
        if now and self.delivering and kind == "pump.infusion_started" and self.pending:
            self._begin_lost_stop_cycle(ts, t, ch)
            return
        if now == self.delivering:
            return
        if not now:  # the drug stopped reaching the patient
            self.delivering = False
            self.last_stop = ts
            if self.run_since is not None:
                self.cycle_infusion_s += ts - self.run_since
            self.run_since = None
            return
        # the drug starts reaching the patient
        gap = None if self.last_stop is None else ts - self.last_stop
        starts_cycle = False
        if kind == "pump.infusion_started":
            if self.pending is not None:
                starts_cycle = True
                number, phase, dose = self.pending
                self.pending = None
                self._begin_cycle(ts, number, phase, dose, inferred=False, t=t)
            elif not self.ordered_mode and (
                self.cycle is None or (gap is not None and gap > self.cfg.new_cycle_gap_h * HOUR)
            ):
                starts_cycle = True
                self._begin_cycle(ts, (self.cycle or 0) + 1, None, None, inferred=True, t=t)
        if gap is not None:
            t.interruption_h = gap / HOUR
            if not starts_cycle:
                t.restart = True
                self.cycle_max_gap_s = max(self.cycle_max_gap_s, gap)
        self.delivering = True
        self.run_since = ts

    def _begin_lost_stop_cycle(self, ts: float, t: Passing, started: _Channel) -> None:
        """A start while the drug is already running (its stop was lost) begins the ordered cycle.

        When the previous cycle really stopped is unknown, so its treatment-free
        interval is not computed (never guessed); its infusion counts up to now.
        The channel that was running is taken as stopped: its stop is the one lost.
        """
        assert self.pending is not None
        for ch in self.channels.values():
            if ch is not started:
                ch.delivering = False
        if self.run_since is not None:
            self.cycle_infusion_s += ts - self.run_since
        number, phase, dose = self.pending
        self.pending = None
        self._begin_cycle(ts, number, phase, dose, inferred=False, t=t, stop_known=False)
        self.run_since = ts

    def _begin_cycle(
        self,
        ts: float,
        number: int,
        phase: str | None,
        dose: float | None,
        *,
        inferred: bool,
        t: Passing,
        stop_known: bool = True,
    ) -> None:
        t.cycle_start = True
        if self.cycle is not None:
            if stop_known and self.last_stop is not None:
                t.tfi_h = (ts - self.last_stop) / HOUR
            t.prev_cycle_infusion_h = self.cycle_infusion_s / HOUR
            t.prev_gap_h = self.cycle_max_gap_s / HOUR
            t.prev_phase = self.phase
        self.cycle = number
        self.last_dose = None
        t.prev_dose_mcg_day = None
        self.cycle_start_ts = ts
        self.cycle_infusion_s = 0.0
        self.cycle_max_gap_s = 0.0
        self.cycle_inferred = inferred
        self.phase = phase
        self.ordered_dose = dose

    # -- what rules see -----------------------------------------------------
    def view(
        self, event: Event | None, ts: float, t: Passing | None, groups: int = ALL_GROUPS
    ) -> StateView:
        """The state at ``ts`` as a flat dict of floats, bools and strings (no None).

        ``t`` is what applying ``event`` changed in passing (None at a deadline).
        ``groups`` (a mask of :data:`GROUP_OF` values) limits the view to the
        groups of fields a caller reads: the engine asks for those its rules
        read for the event type, and most types read only a few.
        """
        t = t if t is not None else Passing(was_running=self.delivering)
        s: dict[str, Any] = {
            "registered": self.registered,
            "hospitalized": self.setting in self.cfg.hospital_settings,
            "drug_running": self.delivering,
            "was_running": t.was_running,
            "cycle_start": t.cycle_start,
            "restart": t.restart,
            "cycle_inferred": self.cycle_inferred,
            "order_pending": self.pending is not None,
        }
        if groups & G_PATIENT:
            _put(s, "weight_kg", self.weight_kg)
            self._bsa(s)
            _put(s, "height_cm", self.height_cm)
            _put(s, "indication", self.indication)
            _put(s, "setting", self.setting)
            if self.birth_date is not None:
                s["age_years"] = float(_age(self.birth_date, ts))
        if groups & G_PASSING:
            _put(s, "interruption_h", t.interruption_h)
            _put(s, "tfi_h", t.tfi_h)
            _put(s, "prev_cycle_infusion_h", t.prev_cycle_infusion_h)
            _put(s, "prev_gap_h", t.prev_gap_h)
            _put(s, "prev_phase", t.prev_phase)
        if groups & G_RUN:
            if not self.delivering and self.last_stop is not None:
                s["stopped_h"] = (ts - self.last_stop) / HOUR
            if self.delivering and self.run_since is not None:
                s["run_started_h"] = (ts - self.run_since) / HOUR
            if self.pending is not None:
                s["pending_cycle"] = float(self.pending[0])
        if groups & G_CYCLE and self.cycle is not None and self.cycle_start_ts is not None:
            elapsed = ts - self.cycle_start_ts
            infused = self.cycle_infusion_s
            if self.delivering and self.run_since is not None:
                infused += ts - self.run_since
            s["cycle"] = float(self.cycle)
            s["cycle_elapsed_h"] = elapsed / HOUR
            s["cycle_day"] = float(int(elapsed // (24 * HOUR)) + 1)
            s["infusion_h"] = infused / HOUR
            s["infusion_day"] = float(int(infused // (24 * HOUR)) + 1)
            s["max_gap_h"] = self.cycle_max_gap_s / HOUR
            _put(s, "phase", self.phase)
            _put(s, "ordered_dose_mcg_day", self.ordered_dose)
        if groups & G_SUPERVISION and self.last_supervision is not None:
            s["supervision_age_h"] = (ts - self.last_supervision) / HOUR
        if groups & G_DOSE:
            _put(s, "running_dose_mcg_day", self._running_dose())
            _put(s, "prev_dose_mcg_day", t.prev_dose_mcg_day)
        if groups & G_DRUG_BAG:
            drug_ch = self._drug_channel()
            if drug_ch is not None and drug_ch.bag_id is not None:
                s["drug_bag_id"] = drug_ch.bag_id
                dbag = self.bags.get(drug_ch.bag_id)
                if dbag is not None:
                    s["drug_bag_duration_h"] = dbag.duration_h
                    if dbag.first_start is not None:
                        s["drug_bag_age_h"] = (ts - dbag.first_start) / HOUR
        self._premedication(s, ts, groups & G_PREMED)
        if event is not None and groups & _G_EVENT:
            self._event_view(s, event, ts, t, groups)
        return cast(StateView, s)

    def _bsa(self, s: dict[str, Any]) -> None:
        """BSA as recorded, else Mosteller's sqrt(height cm x weight kg / 3600), said so."""
        if self.bsa_m2 is not None:
            s["bsa_m2"] = float(self.bsa_m2)
            s["bsa_derived"] = False
            s["bsa_source"] = "recorded"
        elif self.height_cm and self.weight_kg:
            s["bsa_m2"] = round(math.sqrt(self.height_cm * self.weight_kg / 3600.0), 4)
            s["bsa_derived"] = True
            s["bsa_source"] = (
                f"derived from {_num(self.height_cm)} cm and {_num(self.weight_kg)} kg by Mosteller"
            )
        else:
            s["bsa_derived"] = False

    def _premedication(self, s: dict[str, Any], ts: float, wanted: int) -> None:
        """The window's doses; the window is trimmed at every view, read or not, as always."""
        window = self.cfg.premed_window_h * HOUR
        while self.meds and self.meds[0][0] < ts - window:
            self.meds.popleft()
        if not wanted:
            return
        for name in self.cfg.premed_drugs:
            s[f"premed_{name}_mg"] = 0.0
        for when, name, mg in self.meds:
            if when <= ts:
                s[f"premed_{name}_mg"] += mg

    def _event_view(
        self, s: dict[str, Any], event: Event, ts: float, t: Passing, groups: int
    ) -> None:
        """The fields of the event's actor, pump, channel and bag that ``groups`` asks for."""
        if groups & G_ACTOR:
            role = event.actor_role
            if role is not None:
                s["professional"] = role in self.cfg.professional_roles
        if not groups & (G_PUMP | G_CHANNEL | G_BAG):
            return
        pump_id = event.pump_id
        if pump_id is not None:
            ch = self.channels.get((pump_id, event.channel))
            pump = self.pumps.get(pump_id) if groups & G_PUMP else None
            if pump is not None:
                s["pump_registered"] = pump.kind is not None
                if pump.kind is not None:  # a string or a bool: posted as it is
                    s["pump_kind"] = pump.kind
                if pump.lockable is not None:
                    s["pump_lockable"] = pump.lockable
                if pump.alarms is not None:
                    s["pump_alarms"] = pump.alarms
                if pump.lost_since is not None:
                    s["connection_lost_h"] = (ts - pump.lost_since) / HOUR
        else:
            ch = next(
                (
                    c
                    for (_, name), c in self.channels.items()
                    if name == event.channel and c.has_drug
                ),
                None,
            )
        has_drug = bool(ch is not None and ch.has_drug)
        channel = groups & G_CHANNEL
        if channel:
            s["channel_has_drug"] = has_drug
            if event.type == "patient.weight_recorded":
                s["is_drug"] = self.delivering  # a new weight re-checks the dose while it runs
            else:
                s["is_drug"] = t.is_drug if t.is_drug is not None else has_drug
        if not groups & G_BAG and (ch is None or not channel):
            return
        bag_id = t.bag_id or getattr(event, "bag_id", None) or (ch.bag_id if ch else None)
        bag = self.bags.get(bag_id) if bag_id else None
        if ch is not None and channel:
            _put(s, "rate_ml_h", ch.rate_ml_h)
            dose = ch.dose_mcg_day
            if dose is None and bag is not None and ch.has_drug:
                dose = bag.dose_mcg_day
            _put(s, "dose_mcg_day", dose)
        if not groups & G_BAG:
            return
        if bag_id is not None:
            s["bag_id"] = bag_id
        s["bag_dispensed"] = bag is not None
        if bag is not None:
            s["bag_is_drug"] = bag.is_drug
            s["bag_rate_ml_h"] = bag.rate_ml_h
            s["bag_dose_mcg_day"] = bag.dose_mcg_day
            s["bag_duration_h"] = bag.duration_h
            s["bag_volume_ml"] = bag.volume_ml
            if bag.preservative is not None:
                s["bag_preservative"] = bag.preservative
            if bag.first_start is not None:
                s["bag_age_h"] = (ts - bag.first_start) / HOUR


def _put(s: dict[str, Any], name: str, value: Any) -> None:
    kind = type(value)
    if kind is float or kind is str or kind is bool:  # the common case, as it is
        s[name] = value
    elif value is not None:
        s[name] = rule_value(value)


def _num(value: float) -> str:
    return f"{value:g}"


def _age(birth: date, ts: float) -> int:
    from datetime import UTC, datetime

    on = datetime.fromtimestamp(ts, tz=UTC).date()
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
