"""Denominators, rates, compliance and timelines, from the events and the findings.

A count of findings means little to a committee without what it is out of:
so many patient-days on drug, bags hung, restarts after a long interruption.
This module reads the canonical events once, follows each patient in event
time (as the replay does) and keeps what the report shows: spans (drug
running, bags, hospital stays, holds), marks (dose steps, premedication,
supervision, reactions) and the moments a requirement applies to. Findings
are then matched to those moments, by the event that caused them or by time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from pumpguard.engine.events import Event

__all__ = [
    "Mark",
    "Moment",
    "Params",
    "PatientTimeline",
    "Population",
    "Span",
    "digest_events",
    "week_start",
]

HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
_MONDAY_EPOCH = 4 * DAY  # 1970-01-05 was a Monday
_DRUG_START = {"pump.infusion_started"}
_STOPS = {"pump.infusion_stopped", "pump.infusion_completed"}
_FLUSHES = {"pump.flush", "pump.bolus", "pump.prime", "nursing.line_flush"}


def week_start(ts: float) -> float:
    """Monday 00:00 UTC of the week holding ``ts``."""
    return ts - ((ts - _MONDAY_EPOCH) % WEEK)


@dataclass(frozen=True)
class Params:
    """The pack parameters the denominators follow (so they move with a site file)."""

    drug_names: tuple[str, ...] = ("blinatumomab", "blincyto")
    hospital_settings: tuple[str, ...] = ("inpatient", "observation")
    premedication_drugs: tuple[str, ...] = ("dexamethasone", "prednisone")
    reinit_threshold_h: float = 4.0
    new_cycle_gap_h: float = 168.0
    adult_age_years: float = 18.0
    dose_tolerance: float = 0.05
    severe_grade: int = 3

    @classmethod
    def from_pack(cls, params: Mapping[str, Any]) -> Params:
        base = cls()
        pick = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
        for k in ("drug_names", "hospital_settings", "premedication_drugs"):
            if k in pick:
                pick[k] = tuple(str(v).lower() for v in pick[k])
        return cls(**{**base.__dict__, **pick})


@dataclass(frozen=True)
class Span:
    """Something that lasted: from ``start`` to ``end`` (epoch seconds), with a label."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Mark:
    """Something that happened at one time: ``kind`` picks its lane and colour."""

    ts: float
    kind: str
    label: str
    event_id: str


@dataclass(frozen=True)
class Moment:
    """A time a requirement applies to (a cycle start, a long restart, a step-up)."""

    patient_id: str
    ts: float
    kind: str
    event_id: str
    cycle: int


@dataclass
class PatientTimeline:
    """One patient's course as the report draws it."""

    patient_id: str
    indication: str | None = None
    birth: date | None = None
    running: list[Span] = field(default_factory=list)
    bags: list[Span] = field(default_factory=list)
    hospital: list[Span] = field(default_factory=list)
    holds: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    cycles: list[Moment] = field(default_factory=list)
    moments: list[Moment] = field(default_factory=list)
    restarts: int = 0

    def adult_at(self, ts: float, years: float) -> bool:
        if self.birth is None:
            return True
        day = datetime.fromtimestamp(ts, tz=UTC).date()
        age = (
            day.year - self.birth.year - ((day.month, day.day) < (self.birth.month, self.birth.day))
        )
        return age >= years


class _Row(NamedTuple):
    """An event cut down to what the report needs (a full model per event costs too much)."""

    ts: float
    n: int
    type: str
    event_id: str
    key: tuple[str, str]
    data: dict[str, Any]


_KEEP = {
    "drug": None,
    "dose_mcg_day": None,
    "bag_id": None,
    "setting": None,
    "dose_mg": None,
    "category": None,
    "grade": None,
    "cycle": None,
    "indication": None,
    "birth_date": None,
    "actor_role": None,
    "reason": None,
    "duration_h": None,
}


@dataclass
class Population:
    """Every patient's timeline, the bags' labels and the time the log ends."""

    params: Params
    patients: dict[str, PatientTimeline] = field(default_factory=dict)
    end: float = 0.0
    start: float | None = None

    # -- totals -------------------------------------------------------------------

    @property
    def cycles(self) -> int:
        return sum(len(p.cycles) for p in self.patients.values())

    @property
    def bags(self) -> int:
        return sum(len(p.bags) for p in self.patients.values())

    @property
    def restarts(self) -> int:
        return sum(p.restarts for p in self.patients.values())

    @property
    def patient_days(self) -> float:
        return sum(s.end - s.start for p in self.patients.values() for s in p.running) / DAY

    def moments(self, kind: str) -> list[Moment]:
        return [m for p in self.patients.values() for m in p.moments if m.kind == kind]


class _Reader:
    """Collects rows per patient, then follows each patient in time order."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.rows: dict[str, list[_Row]] = defaultdict(list)
        self.bag_label: dict[tuple[str, str], tuple[float, float]] = {}
        self.n = 0
        self.pop = Population(params)

    def add(self, event: Event) -> None:
        ts = event.ts.timestamp()
        self.n += 1
        self.pop.end = max(self.pop.end, ts)
        self.pop.start = ts if self.pop.start is None else min(self.pop.start, ts)
        if event.type in ("pump.alarm", "nursing.bag_change"):
            return
        fields = event.__dict__  # a pydantic model's field values; getattr is ten times slower
        if event.type == "bag.dispensed":
            dose, hours = fields.get("dose_mcg_day", 0.0), fields.get("duration_h", 0)
            self.bag_label[(event.patient_id, fields.get("bag_id", ""))] = (dose, float(hours))
            return
        data = {k: fields[k] for k in _KEEP if fields.get(k) is not None}
        key = (event.pump_id or "", event.channel)
        self.rows[event.patient_id].append(_Row(ts, self.n, event.type, event.event_id, key, data))


def _is_drug(params: Params, name: Any) -> bool:
    text = str(name or "").lower()
    return any(d in text for d in params.drug_names)


class _Course:
    """One patient's walk through time: the state a timeline needs, nothing clinical beyond it."""

    def __init__(self, pop: Population, reader: _Reader, pid: str) -> None:
        self.p = pop.params
        self.end = pop.end
        self.labels = reader.bag_label
        self.tl = PatientTimeline(pid)
        self.key: tuple[str, str] | None = None
        self.run_from: float | None = None
        self.last_stop: float | None = None
        self.paused = False
        self.bag: tuple[str, float] | None = None
        self.dose: float | None = None
        self.cycle = 0
        self.pending: int | None = None
        self.ordered = False
        self.stay: float | None = None
        self.open_holds: dict[str, tuple[float, str]] = {}

    def walk(self, rows: Sequence[_Row]) -> PatientTimeline:
        for row in sorted(rows, key=lambda r: (r.ts, r.n)):
            handler = getattr(self, "_" + row.type.replace(".", "_"), None)
            if handler is not None:
                handler(row)
            elif row.type in _FLUSHES:
                self._mark(row, "flush", row.type.split(".")[1].replace("_", " "))
        self._close_all()
        return self.tl

    def _mark(self, row: _Row, kind: str, label: str) -> None:
        self.tl.marks.append(Mark(row.ts, kind, label, row.event_id))

    # -- delivery -----------------------------------------------------------------

    def _pump_infusion_started(self, row: _Row) -> None:
        if not _is_drug(self.p, row.data.get("drug")):
            return
        new_cycle = (
            self.cycle == 0
            or self.pending is not None
            or (
                not self.ordered
                and self.last_stop is not None
                and self.run_from is None
                and row.ts - self.last_stop > self.p.new_cycle_gap_h * HOUR
            )
        )
        if new_cycle:
            if self.run_from is not None:
                self._stop(row.ts)
            self.cycle = self.pending or self.cycle + 1
            self.pending = None
            moment = Moment(self.tl.patient_id, row.ts, "cycle_start", row.event_id, self.cycle)
            self.tl.cycles.append(moment)
            self.tl.moments.append(moment)
            self._mark(row, "cycle", f"cycle {self.cycle} starts")
        if self.run_from is None:
            self._begin(row, restart=not new_cycle)
        self.key = row.key
        bag = row.data.get("bag_id")
        if bag is not None:
            self._hang(row, str(bag))
        self._dose(row, row.data.get("dose_mcg_day"))

    def _pump_infusion_resumed(self, row: _Row) -> None:
        if self.key == row.key and self.run_from is None:
            self._begin(row, restart=True)

    def _begin(self, row: _Row, *, restart: bool) -> None:
        self.run_from = row.ts
        if not restart or self.last_stop is None:
            return
        gap = row.ts - self.last_stop
        long = gap >= self.p.reinit_threshold_h * HOUR
        self.tl.restarts += self.paused or long  # a new bag after a completed one is no restart
        if long:
            self.tl.moments.append(
                Moment(self.tl.patient_id, row.ts, "long_restart", row.event_id, self.cycle)
            )
            self._mark(row, "restart", f"restart after {gap / HOUR:.1f} h")

    def _stop(self, ts: float, *, paused: bool = False) -> None:
        self.paused = paused
        if self.run_from is not None:
            self.tl.running.append(Span(self.run_from, ts, f"cycle {self.cycle}"))
        self.run_from = None
        self.last_stop = ts

    def _pump_infusion_stopped(self, row: _Row) -> None:
        if self.key == row.key and self.run_from is not None:
            self._stop(row.ts, paused=True)

    def _pump_infusion_completed(self, row: _Row) -> None:
        if self.key == row.key:
            self._stop(row.ts)
            self._unhang(row.ts)

    def _pump_bag_changed(self, row: _Row) -> None:
        if self.key == row.key:
            self._hang(row, str(row.data.get("bag_id")))

    def _pump_rate_changed(self, row: _Row) -> None:
        if self.key == row.key:
            self._dose(row, row.data.get("dose_mcg_day"))

    def _hang(self, row: _Row, bag_id: str) -> None:
        if self.bag is not None and self.bag[0] == bag_id:
            return
        self._unhang(row.ts)
        self.bag = (bag_id, row.ts)
        label = self.labels.get((self.tl.patient_id, bag_id))
        if label is not None and row.data.get("dose_mcg_day") is None:
            self._dose(row, label[0])

    def _unhang(self, ts: float) -> None:
        if self.bag is None:
            return
        bag_id, since = self.bag
        label = self.labels.get((self.tl.patient_id, bag_id))
        hours = f", {label[1]:g} h bag" if label else ""
        self.tl.bags.append(Span(since, ts, f"{bag_id}{hours}"))
        self.bag = None

    def _dose(self, row: _Row, dose: Any) -> None:
        if dose is None:
            return
        dose = float(dose)
        prev = self.dose
        if prev is not None and abs(dose - prev) <= self.p.dose_tolerance * max(prev, 1e-9):
            return
        self.dose = dose
        self._mark(row, "dose", f"{dose:g} mcg/day")
        if prev is not None and dose > prev * (1 + self.p.dose_tolerance) and self.cycle:
            self.tl.moments.append(
                Moment(self.tl.patient_id, row.ts, "step_up", row.event_id, self.cycle)
            )

    # -- care around the drug -----------------------------------------------------

    def _patient_registered(self, row: _Row) -> None:
        self.tl.indication = row.data.get("indication")
        birth = row.data.get("birth_date")
        self.tl.birth = birth if isinstance(birth, date) else None

    def _cycle_ordered(self, row: _Row) -> None:
        self.pending = int(row.data.get("cycle", self.cycle + 1))
        self.ordered = True

    def _encounter_admitted(self, row: _Row) -> None:
        if str(row.data.get("setting")) in self.p.hospital_settings:
            if self.stay is None:
                self.stay = row.ts
        else:
            self._encounter_discharged(row)

    _encounter_transferred = _encounter_admitted

    def _encounter_discharged(self, row: _Row) -> None:
        if self.stay is not None:
            self.tl.hospital.append(Span(self.stay, row.ts, "in hospital"))
            self.stay = None

    def _medication_administered(self, row: _Row) -> None:
        drug = str(row.data.get("drug", "")).lower()
        if any(d in drug for d in self.p.premedication_drugs):
            self._mark(row, "premed", f"{drug} {row.data.get('dose_mg', 0):g} mg")

    def _nursing_supervision(self, row: _Row) -> None:
        self._mark(row, "supervision", f"supervised ({row.data.get('actor_role')})")

    def _clinical_adverse_event(self, row: _Row) -> None:
        cat, grade = str(row.data.get("category")), int(row.data.get("grade", 0))
        self._mark(row, "reaction", f"{cat} grade {grade}")
        resolved = grade == 0 if cat == "crs" else grade <= 1
        if grade >= self.p.severe_grade and cat not in self.open_holds:
            self.open_holds[cat] = (row.ts, f"{cat} grade {grade} hold")
        elif resolved and cat in self.open_holds:
            since, label = self.open_holds.pop(cat)
            self.tl.holds.append(Span(since, row.ts, label))

    def _order_hold(self, row: _Row) -> None:
        self.open_holds.setdefault("order", (row.ts, f"prescriber hold: {row.data.get('reason')}"))

    def _order_released(self, row: _Row) -> None:
        if "order" in self.open_holds:
            since, label = self.open_holds.pop("order")
            self.tl.holds.append(Span(since, row.ts, label))

    def _order_discontinued(self, row: _Row) -> None:
        self._mark(row, "reaction", f"discontinued: {row.data.get('reason')}")

    def _close_all(self) -> None:
        self._stop(self.end)
        self._unhang(self.end)
        if self.stay is not None:
            self.tl.hospital.append(Span(self.stay, self.end, "in hospital"))
        for since, label in self.open_holds.values():
            self.tl.holds.append(Span(since, self.end, label + " (open)"))


def digest_events(events: Iterable[Event], params: Params) -> Population:
    """Read every event once and build each patient's timeline."""
    reader = _Reader(params)
    for event in events:
        reader.add(event)
    pop = reader.pop
    for pid in sorted(reader.rows):
        pop.patients[pid] = _Course(pop, reader, pid).walk(reader.rows[pid])
    return pop
