"""A SimPy generator of Blincyto courses: pump, nurse, pharmacy and admissions as processes.

Time is SimPy's ``env.now`` in whole minutes from an origin (integers, so no
float drift can move an event across a window's edge). Each patient draws from
its own ``random.Random``, seeded from the scenario seed and the patient's
index, so one patient's deviations never shift another patient's stream, and
the same scenario and seed give the same bytes.

What a clean course looks like follows ``simulations/course.py`` and the
spec's "Readings decided": an order before each cycle, admission for the
label's hospital window, dexamethasone about an hour before each cycle start,
the step-up and any restart after 4 h or more, bags dispensed with their label
rate and dose, bags changed on schedule by a professional without a flush,
supervision documented at cycle 3+ starts and at long restarts.

Deviations are injected at (cycle, day); each one records its onset (the
simulated time it became real), which scoring compares with the findings.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import simpy
from pumpguard.simulations.course import BAG_RATES, BAG_VOLUMES, iso
from pumpguard.simulations.scenario import Course, Deviation, Patient, Scenario, Staff

__all__ = ["Generated", "Injected", "PatientPlan", "Population", "generate", "generate_many"]

H = 60
DAY = 1440
CYCLE_MIN = 28 * DAY
REINIT_MIN = 4 * H
DRUG = "blinatumomab"
_ALLOWED_HOURS = (24, 48, 72, 96, 168)
_PRESERVATIVE_MIN_KG = {"seed": 22.0, "label-2024": 5.4}

_DEFAULT_ALLOW: dict[str, tuple[str, ...]] = {
    # readings the spec leaves open: the rule may ask for the start dose after any hold
    "restart_during_hold": ("DOSE_MISMATCH",),
    "grade4_restart": ("DOSE_MISMATCH",),
    # with no step there is no step-up premedication; a rule keyed on day 8 may say so
    "dose_error": ("PREMEDICATION_MISSING",),
}

Proc = Generator[simpy.Event, Any, Any]


@dataclass
class Injected:
    """A deviation as injected: its patient, its onset in simulated time, the codes owed."""

    patient_id: str
    deviation: Deviation
    scenario: str = ""
    onset: datetime | None = None
    detail: str = ""

    @property
    def kind(self) -> str:
        return self.deviation.kind

    @property
    def codes(self) -> tuple[str, ...]:
        return self.deviation.codes

    @property
    def allow(self) -> tuple[str, ...]:
        return self.deviation.allow + _DEFAULT_ALLOW.get(self.kind, ())


@dataclass
class PatientPlan:
    """One patient to simulate: who, which course, how staff behave, what goes wrong."""

    patient: Patient
    course: Course
    staff: Staff
    deviations: tuple[Deviation, ...] = ()
    offset_min: int = 0
    scenario: str = ""


@dataclass
class Generated:
    """A generated stream: canonical JSONL lines in time order, and what was injected."""

    lines: list[str]
    injected: list[Injected]
    patients: int

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


@dataclass
class _Bag:
    bag_id: str
    hours: int
    dose: float


@dataclass
class _Stop:
    """Why the pump stops mid-bag, for how long, and what care the restart gets."""

    reason: str
    pause_min: int
    premed: bool
    supervise: bool
    alarm: str | None = None
    on_restart: Callable[[], None] | None = None
    reset_dose: bool = False
    new_bag_needed: bool = False


@dataclass
class _Result:
    status: str  # completed | stopped (by the nurse at the bag's time) | expired (long stop)
    infused: int
    stop: _Stop | None = None


@dataclass
class _Sink:
    """Collects every patient's lines in emission order (SimPy emits in time order)."""

    origin: datetime
    lines: list[str] = field(default_factory=list)


class _PatientSim:
    """One patient's processes; all randomness from ``rng``."""

    def __init__(
        self,
        env: simpy.Environment,
        sink: _Sink,
        plan: PatientPlan,
        rng: random.Random,
        edition_floor_kg: float,
    ) -> None:
        self.env = env
        self.sink = sink
        self.plan = plan
        self.p = plan.patient
        self.c = plan.course
        self.staff = plan.staff
        self.rng = rng
        self.floor_kg = edition_floor_kg
        self.pid = plan.patient.id
        self.pump_id = f"PUMP-{self.pid}"
        self.n = 0
        self.bag_n = 0
        self.hospitalized = False
        self.running = False
        self.unreachable = False
        self.bag_proc: simpy.Process | None = None
        self.hang_min = 0
        self.change_due = 0
        self.cycle = 0
        self.cycle_start = 0
        self.inf_done = 0
        self.step_from: int | None = None
        self.adult_dosing = False
        self.no_step = False
        self.stop_course = False
        self.base_pump = self.pump_id
        self.current = _Bag("", 24, 0.0)
        self.next_hang = 0
        self.next_bag: simpy.Process | None = None
        self.injected = [Injected(self.pid, d, scenario=plan.scenario) for d in plan.deviations]
        self.pending: list[Injected] = list(self.injected)
        self.hang_listeners: list[simpy.Event] = []

    @property
    def t(self) -> int:
        """Now, in whole minutes (every delay is an integer, so this is exact)."""
        return int(self.env.now)

    # -- emitting -------------------------------------------------------------
    def emit(self, type_: str, **fields: Any) -> str:
        """Write one canonical event at ``self.t``; pump events are lost while unreachable."""
        if (
            self.unreachable
            and type_.startswith("pump.")
            and not type_.startswith("pump.connection")
        ):
            return ""
        self.n += 1
        ev: dict[str, Any] = {
            "event_id": f"{self.pid}-{self.n:05d}",
            "type": type_,
            "ts": self.ts(),
            "patient_id": self.pid,
        }
        if type_.startswith("pump."):
            ev["pump_id"] = self.pump_id
        ev.update({k: v for k, v in fields.items() if v is not None})
        self.sink.lines.append(json.dumps(ev, separators=(",", ":")))
        return str(ev["event_id"])

    def ts(self, at: float | None = None) -> str:
        return iso(self.when(self.t if at is None else at))

    def when(self, at: float) -> datetime:
        return self.sink.origin + timedelta(minutes=at)

    def later(self, delay: int, fn: Callable[[], Any]) -> None:
        """Run ``fn`` ``delay`` minutes from now (documentation written after the act)."""

        def proc() -> Proc:
            yield self.env.timeout(delay)
            fn()

        self.env.process(proc())

    def draw(self, span: tuple[int, int]) -> int:
        return self.rng.randint(span[0], span[1])

    def role(self) -> str:
        return "nurse" if self.hospitalized else "home_health_nurse"

    def mark(self, inj: Injected, at: float | None = None, detail: str = "") -> None:
        inj.onset = self.when(self.t if at is None else at)
        inj.detail = detail

    def take(self, kind: str, variant: str | None = None) -> Injected | None:
        """The first pending decision-point deviation of ``kind`` that is due now."""
        for inj in self.pending:
            d = inj.deviation
            if d.kind != kind or (variant is not None and d.variant != variant):
                continue
            if d.cycle == self.cycle and self.t >= self.at(d):
                self.pending.remove(inj)
                return inj
        return None

    def cycle_dev(self, kind: str, cycle: int, variant: str | None = None) -> Injected | None:
        for inj in self.pending:
            d = inj.deviation
            if d.kind == kind and d.cycle == cycle and (variant is None or d.variant == variant):
                self.pending.remove(inj)
                return inj
        return None

    def at(self, d: Deviation) -> int:
        return self.cycle_start + round((d.day - 1) * DAY)

    # -- clinical numbers ------------------------------------------------------
    def doses(self) -> tuple[float, float]:
        """(start, target) mcg/day for this patient's band; adult numbers in a dose error."""
        if self.p.weight_kg >= 45 or self.adult_dosing:
            return 9.0, 28.0
        bsa = self.p.bsa_m2 or 1.0
        return round(min(5 * bsa, 9.0), 2), round(min(15 * bsa, 28.0), 2)

    def dose_at(self, inf_min: int) -> float:
        start, target = self.doses()
        if self.no_step:
            return start
        if self.step_from is None:
            return target
        # step when the bag would start less than 11 h before the step is due (12 h allowed)
        return target if inf_min >= self.step_from + 168 * H - 11 * H else start

    def premed_mg(self) -> float:
        if self.p.child:
            return min(20.0, math.ceil(5 * (self.p.bsa_m2 or 1.0) * 10) / 10)
        return 20.0

    def premed(self) -> None:
        self.emit(
            "medication.administered", drug="dexamethasone", dose_mg=self.premed_mg(), route="IV"
        )

    def bag_hours(self, inf_min: int, prefer_home: bool) -> int:
        pref: int = self.c.home_bag_hours if prefer_home else self.c.inpatient_bag_hours
        if self.p.weight_kg < self.floor_kg:
            pref = min(pref, 48)
        limit = pref
        if self.step_from is not None:
            to_step = self.step_from + 168 * H - inf_min
            if to_step > 11 * H:
                limit = min(limit, max(h for h in _ALLOWED_HOURS if h * H <= max(to_step, DAY)))
        return limit

    # -- pharmacy --------------------------------------------------------------
    def dispense(self, hours: int, dose: float) -> _Bag:
        self.bag_n += 1
        bag = _Bag(f"{self.pid}-BAG{self.bag_n:03d}", hours, dose)
        self.emit(
            "bag.dispensed",
            bag_id=bag.bag_id,
            drug=DRUG,
            dose_mcg_day=dose,
            duration_h=hours,
            rate_ml_h=BAG_RATES[hours],
            volume_ml=BAG_VOLUMES[hours],
            preservative=hours >= 72,
        )
        return bag

    def pharmacy(self, at: int, plan: Callable[[], tuple[int, float]]) -> simpy.Process:
        """The pharmacy process: at ``at`` it labels and dispenses the bag ``plan`` describes."""

        def proc() -> Proc:
            yield self.env.timeout(max(0, at - self.t))
            hours, dose = plan()
            return self.dispense(hours, dose)

        return self.env.process(proc())

    # -- admissions ------------------------------------------------------------
    def admit(self, setting: str = "inpatient") -> None:
        if not self.hospitalized:
            self.emit("encounter.admitted", setting=setting, location="Hematology ward")
            self.hospitalized = True

    def discharge(self) -> None:
        if self.hospitalized:
            self.emit("encounter.discharged")
            self.hospitalized = False

    def admissions(
        self, start: int, days: float, cycle_end: simpy.Event, *, exact: bool = False
    ) -> Proc:
        """Admit 2 h before the cycle, discharge after ``days`` (or when the cycle ends)."""
        if days <= 0:
            return
        yield self.env.timeout(max(0, start - 2 * H - self.t))
        self.admit()
        if self.c.home_infusion or exact:
            out = start + round(days * DAY) + (0 if exact else self.rng.randint(60, 240))
            yield self.env.any_of([self.env.timeout(max(0, out - self.t)), cycle_end])
        else:
            yield cycle_end
        if cycle_end.triggered:
            yield self.env.timeout(60)
        self.discharge()

    # -- the course (prescriber) ------------------------------------------------
    def course(self) -> Proc:
        first = DAY + self.plan.offset_min
        yield self.env.timeout(first - 8 * H)
        extra: dict[str, Any] = {"birth_date": self.p.birth_date(self.when(first)).isoformat()}
        if self.p.bsa_m2 is not None:
            extra["bsa_m2"] = self.p.bsa_m2
        self.emit(
            "patient.registered",
            weight_kg=self.p.weight_kg,
            indication=self.p.indication,
            **extra,
        )
        self.register_pump(self.c.pump)
        start = first
        last_end: int | None = None
        for cycle in range(1, self.c.cycles + 1):
            if self.stop_course:
                break
            if last_end is not None:
                short = self.cycle_dev("short_treatment_free_interval", cycle)
                if short is not None:
                    gap = round((short.deviation.days or 7) * DAY)
                else:
                    free_days = self.c.treatment_free_days
                    if self.p.edition == "label-2024" and cycle - 1 >= 6:
                        free_days = max(free_days, 56)
                    gap = round(free_days * DAY) + self.rng.randint(60, 3 * DAY)
                start = last_end + gap
                if short is not None:
                    self.mark(short, start, f"cycle {cycle} starts {gap / DAY:.1f} days after")
            last_end = yield self.env.process(self.run_cycle(cycle, start))
        # the course is over: release anything still pending so scoring can say so
        for inj in self.pending:
            inj.detail = "not injected: the course ended before its time"
        self.pending.clear()

    def register_pump(self, kind: str) -> None:
        elastomeric = kind in ("elastomeric", "gravity")
        self.emit(
            "pump.registered",
            device_kind=kind,
            lockable=not elastomeric,
            alarms=not elastomeric,
            model="Elastomeric 2 mL/h" if elastomeric else "CADD-Solis",
        )

    def phase(self, cycle: int) -> str:
        if self.p.indication != "relapsed_refractory":
            return "consolidation"
        return "induction" if cycle <= 2 else "consolidation" if cycle <= 5 else "continued"

    def hospital_days(self, cycle: int) -> float:
        if cycle in self.c.inpatient_days:
            return self.c.inpatient_days[cycle]
        if not self.c.home_infusion:
            return 28.0
        rr = self.p.indication == "relapsed_refractory"
        return {1: 9.0 if rr else 3.0, 2: 2.0}.get(cycle, 0.0)

    def run_cycle(self, cycle: int, start: int) -> Proc:
        """One cycle from order to last stop; returns the last stop's time."""
        env = self.env
        yield env.timeout(max(0, start - 6 * H - self.t))
        self.cycle = cycle
        self.cycle_start = start
        self.inf_done = 0
        rr_first = self.p.indication == "relapsed_refractory" and cycle == 1
        self.step_from = 0 if rr_first else None
        no_step = self.cycle_dev("dose_error", cycle, "no_step_up")
        self.no_step = no_step is not None
        child = self.cycle_dev("dose_error", cycle, "child_as_adult")
        self.adult_dosing = child is not None
        beyond = self.cycle_dev("beyond_max_cycles", cycle)
        if beyond is not None:
            self.mark(beyond, start, f"cycle {cycle} ordered and started")
        first_dose = self.dose_at(0)
        self.emit("cycle.ordered", cycle=cycle, phase=self.phase(cycle), dose_mcg_day=first_dose)
        cycle_end = env.event()
        days = self.hospital_days(cycle)
        early = self.cycle_dev("early_discharge", cycle)
        unsupervised = self.cycle_dev("unsupervised_cycle_start", cycle) if cycle >= 3 else None
        if early is not None:
            out = start + round((early.deviation.day - 1) * DAY)
            self.mark(early, out, f"discharged on day {early.deviation.day:g} of cycle {cycle}")
            days = max((out - start) / DAY, 1 / DAY)
            env.process(self.admissions(start, days, cycle_end, exact=True))
        elif unsupervised is None:
            env.process(self.admissions(start, days, cycle_end))
        # pharmacy prepares the first bag, the nurse premedicates
        prefer_home = days < 1 and self.c.home_infusion
        if no_step is not None:
            self.mark(no_step, start + 168 * H, "dose left at the starting dose past day 8")
        first = self.pharmacy(
            start - self.rng.randint(120, 240),
            lambda: (self.bag_hours(0, prefer_home), first_dose),
        )
        lead = self.draw(self.staff.premedication_lead_min)
        yield env.timeout(max(0, start - lead - self.t))
        self.premed()
        bag = yield first
        yield env.timeout(max(0, start - self.t))
        if child is not None:
            self.mark(child, start, f"dosed {first_dose:g} mcg/day as an adult")
        if cycle >= 3 and not self.hospitalized:
            if unsupervised is None:
                self.later(
                    self.draw(self.staff.documentation_delay_min),
                    lambda: self.emit("nursing.supervision", actor_role="nurse"),
                )
            else:
                self.mark(unsupervised, start, "cycle started at home with no professional")
        for inj in list(self.pending):
            if inj.deviation.cycle == cycle and inj.kind in _POINT_KINDS:
                self.pending.remove(inj)
                env.process(_POINT_KINDS[inj.kind](self, inj))
        end = yield env.process(self.infuse(bag))
        cycle_end.succeed()
        return end

    # -- nurse: the bag loop ------------------------------------------------------
    def infuse(self, bag: _Bag) -> Proc:
        """Hang bags until 28 days of infusion; returns the time of the cycle's last stop."""
        env = self.env
        first = True
        while True:
            self.bag_proc = env.process(self.hang(bag, first=first))
            result = yield self.bag_proc
            first = False
            self.inf_done += result.infused
            if self.inf_done >= CYCLE_MIN or (self.stop_course and result.status != "expired"):
                end = self.t
                flush = self.take("flush_at_completion")
                if flush is not None:
                    yield env.timeout(3)
                    self.mark(flush, detail="line flushed after the cycle's last bag")
                    self.emit("nursing.line_flush", volume_ml=10.0, aspirated_first=False)
                return end
            if result.status == "expired":
                assert result.stop is not None
                bag = yield env.process(self.restart_with_new_bag(result.stop))
                continue
            # a normal change: the nurse arrives on schedule (a few minutes late)
            yield env.timeout(max(0, self.next_hang - self.t))
            if result.status == "completed":
                flush = self.take("flush_at_completion")
                if flush is not None:
                    self.mark(flush, detail="line flushed at a bag completion")
                    self.emit("nursing.line_flush", volume_ml=10.0, aspirated_first=False)
            if self.next_bag is None:  # a stop on the last bag cut the cycle a little short
                return self.t
            bag = yield self.next_bag
            self.change(bag)

    def change(self, bag: _Bag) -> None:
        """The nurse's bag change: the pump learns the bag, the chart a little later."""
        prev = self.current.bag_id
        flush_doc = self.take("flush_at_bag_change", "documented")
        if flush_doc is None:
            for inj in self.pending:
                d = inj.deviation
                if (
                    d.kind == "flush_at_bag_change"
                    and d.variant is None
                    and d.cycle == self.cycle
                    and self.t >= self.at(d)
                ):
                    self.pending.remove(inj)
                    flush_doc = inj
                    break
        flush_pump = self.take("flush_at_bag_change", "pump")
        carer = self.take("caregiver_bag_change")
        self.emit("pump.bag_changed", bag_id=bag.bag_id, previous_bag_id=prev)
        if flush_pump is not None:
            self.mark(flush_pump, detail="pump flush while changing the bag")
            self.emit("pump.flush", volume_ml=5.0)
        role = "caregiver" if carer is not None else self.role()
        if carer is not None:
            self.mark(carer, detail="bag changed by a family caregiver")
        if flush_doc is not None:
            self.mark(flush_doc, detail="line flushed at the bag change")
        flushed = flush_doc is not None
        bag_id = bag.bag_id
        self.later(
            self.draw(self.staff.documentation_delay_min),
            lambda: self.emit(
                "nursing.bag_change", bag_id=bag_id, actor_role=role, line_flushed=flushed
            ),
        )

    def restart_with_new_bag(self, stop: _Stop) -> Proc:
        """After a stop that outlived the bag: a new bag, premedication and supervision."""
        env = self.env
        restart = self.t + stop.pause_min
        lead = self.draw(self.staff.premedication_lead_min)
        if stop.reset_dose:
            self.step_from = self.inf_done
        prefer_home = not self.hospitalized
        dispensed = self.pharmacy(
            restart - self.rng.randint(120, 240),
            lambda: (self.bag_hours(self.inf_done, prefer_home), self.dose_at(self.inf_done)),
        )
        if stop.premed and stop.pause_min > lead:
            yield env.timeout(stop.pause_min - lead)
            self.premed()
        yield env.timeout(max(0, restart - self.t))
        bag = yield dispensed
        if stop.on_restart is not None:
            stop.on_restart()
        if stop.supervise:
            self.supervise_soon()
        self.next_hang = self.t
        self.change(bag)
        return bag

    def supervise_soon(self) -> None:
        self.later(
            self.draw(self.staff.documentation_delay_min),
            lambda: self.emit("nursing.supervision", actor_role=self.role()),
        )

    # -- pump ------------------------------------------------------------------
    def hang(self, bag: _Bag, *, first: bool) -> Proc:
        """The pump runs one bag until it is empty, the nurse changes it, or a long stop."""
        env = self.env
        if not first:
            yield env.timeout(self.rng.randint(1, 4))
        self.current = bag
        self.hang_min = self.t
        rate = BAG_RATES[bag.hours]
        dose = bag.dose
        remaining = min(bag.hours * H, CYCLE_MIN - self.inf_done)
        change_due = self.t + bag.hours * H
        elasto = self.take("elastomeric_pump")
        if elasto is None and self.pump_id != self.base_pump:
            self.pump_id = self.base_pump
            self.register_pump(self.c.pump)
        if elasto is not None:
            self.pump_id = f"ELASTO-{self.pid}"
            self.register_pump("elastomeric")
            self.mark(elasto, detail="bag hung on an elastomeric pump")
        mismatch = self.take("rate_mismatch")
        if mismatch is not None:
            rate = BAG_RATES[24] if bag.hours != 24 else BAG_RATES[48]
            self.mark(mismatch, detail=f"{bag.hours} h bag programmed at {rate:g} mL/h")
        mg = self.take("dose_error", "mg_for_mcg")
        if mg is not None:
            dose = bag.dose * 1000
            self.mark(mg, detail=f"programmed {dose:g} mcg/day (mg entered as mcg)")
        # a bag cut short by the cycle's end cannot run past its time: wait for a full one
        full = bag.hours * H + 6 * H <= CYCLE_MIN - self.inf_done
        overdue = self.take("bag_overdue") if full else None
        if overdue is not None:
            extra = round((overdue.deviation.hours or 3) * H)
            self.mark(overdue, self.t + bag.hours * H, f"bag left {extra / H:g} h past its time")
            remaining = min(remaining + extra, CYCLE_MIN - self.inf_done)
            change_due += extra
        self.emit(
            "pump.infusion_started",
            drug=DRUG,
            rate_ml_h=rate,
            dose_mcg_day=dose,
            bag_id=bag.bag_id,
            vtbi_ml=BAG_VOLUMES[bag.hours],
        )
        self.running = True
        for ev in self.hang_listeners:
            if not ev.triggered:
                ev.succeed()
        self.hang_listeners = []
        if mismatch is not None:
            fix = round((mismatch.deviation.hours or 2) * H)
            self.later(fix, lambda: self.fix_rate(bag))
        late = self.draw(self.staff.bag_change_late_min)
        self.change_due = change_due
        self.next_hang = change_due + late
        # pharmacy prepares the next bag a few hours before it is due
        predicted = self.inf_done + remaining
        self.next_bag = None
        if predicted < CYCLE_MIN:
            prefer_home = not self.hospitalized or self.hospital_left(change_due)
            step_before = self.dose_at(self.inf_done)

            def plan() -> tuple[int, float]:
                return self.bag_hours(predicted, prefer_home), self.dose_at(predicted)

            self.next_bag = self.pharmacy(change_due - self.rng.randint(120, 240), plan)
            if self.dose_at(predicted) > step_before:
                lead = self.draw(self.staff.premedication_lead_min)
                self.later(max(0, self.next_hang - lead - self.t), self.premed)
        infused = 0
        ran = 0
        while remaining > 0:
            seg = min(remaining, self.next_hang - self.t)
            if seg <= 0:
                self.emit("pump.infusion_stopped", reason="user")
                self.running = False
                return _Result("stopped", infused)
            t0 = self.t
            try:
                yield env.timeout(seg)
                ran = self.t - t0
                remaining -= ran
                infused += ran
            except simpy.Interrupt as intr:
                ran = self.t - t0
                remaining -= ran
                infused += ran
                stop = cast(_Stop, intr.cause)
                self.running = False
                if stop.alarm:
                    self.emit("pump.alarm", alarm=stop.alarm)
                self.emit("pump.infusion_stopped", reason=stop.reason)
                if stop.new_bag_needed or self.t + stop.pause_min >= change_due - 30:
                    return _Result("expired", infused, stop)
                yield from self.pause(stop)
                self.running = True
        self.running = False
        self.emit("pump.alarm", alarm="end_of_infusion")
        self.emit("pump.infusion_completed", bag_id=bag.bag_id)
        return _Result("completed", infused)

    def hospital_left(self, at: int) -> bool:
        days = self.hospital_days(self.cycle)
        return at >= self.cycle_start + days * DAY

    def fix_rate(self, bag: _Bag) -> None:
        if self.running and self.current is bag:
            self.emit("pump.rate_changed", rate_ml_h=BAG_RATES[bag.hours], dose_mcg_day=bag.dose)

    def pause(self, stop: _Stop) -> Proc:
        """A stop on the same bag: wait, premedicate before a long restart, resume."""
        env = self.env
        resume_at = self.t + stop.pause_min
        lead = self.draw(self.staff.premedication_lead_min)
        if stop.premed and stop.pause_min > lead:
            yield env.timeout(stop.pause_min - lead)
            self.premed()
        yield env.timeout(max(0, resume_at - self.t))
        if stop.alarm:
            self.emit("pump.alarm", alarm=stop.alarm, cleared=True)
        if stop.on_restart is not None:
            stop.on_restart()
        self.emit("pump.infusion_resumed", rate_ml_h=BAG_RATES[self.current.hours])
        if stop.supervise:
            self.supervise_soon()

    def when_running(self, at: int, *, room_min: int = 0) -> Proc:
        """Wait until ``at``, then until the drug runs with ``room_min`` left on its bag."""
        env = self.env
        yield env.timeout(max(0, at - self.t))
        while not (self.running and self.change_due - self.t > room_min):
            ev = env.event()
            self.hang_listeners.append(ev)
            yield ev
            yield env.timeout(60)

    def interrupt(self, stop: _Stop) -> bool:
        """Stop the pump mid-bag; False when it is not running (nothing to stop)."""
        if not self.running or self.bag_proc is None or not self.bag_proc.is_alive:
            return False
        self.bag_proc.interrupt(stop)
        return True


# -- point deviations: processes started with the cycle, acting at their time -----


def _bolus(sim: _PatientSim, inj: Injected) -> Proc:
    yield from sim.when_running(sim.at(inj.deviation))
    sim.mark(inj, detail="bolus through the drug's line")
    sim.emit("pump.bolus", volume_ml=2.0)


def _occlusion(sim: _PatientSim, inj: Injected) -> Proc:
    d = inj.deviation
    pause = round((d.hours or 5) * H)
    yield from sim.when_running(sim.at(d), room_min=pause + 2 * H)
    restart = sim.t + pause
    sim.mark(inj, restart, f"occlusion for {pause / H:g} h, restarted at home")
    sim.interrupt(_Stop("occlusion", pause, d.premedicated, d.supervised, alarm="occlusion"))


def _long_interruption(sim: _PatientSim, inj: Injected) -> Proc:
    d = inj.deviation
    pause = round((d.days or 8) * DAY)
    yield from sim.when_running(sim.at(d))
    sim.mark(inj, sim.t + pause, f"restarted after {pause / DAY:g} days in the same cycle")
    sim.interrupt(_Stop("user", pause, True, True, new_bag_needed=True))


def _grade4(sim: _PatientSim, inj: Injected) -> Proc:
    d = inj.deviation
    pause = round((d.hours or 48) * H)
    yield from sim.when_running(sim.at(d))
    sim.mark(inj, detail="grade 4 CRS, restarted later")
    sim.emit("clinical.adverse_event", category="crs", grade=4, term="cytokine release syndrome")
    sim.stop_course = True
    sim.later(30, sim.admit)

    def resolved() -> None:
        sim.emit("clinical.adverse_event", category="crs", grade=0, term="resolved")

    sim.later(pause - 6 * H, resolved)
    sim.interrupt(_Stop("user", pause, True, True, reset_dose=True, new_bag_needed=True))
    sim.later(pause + DAY, sim.discharge)


def _hold(sim: _PatientSim, inj: Injected) -> Proc:
    d = inj.deviation
    pause = round((d.hours or 6) * H)
    yield from sim.when_running(sim.at(d), room_min=pause + 2 * H)
    if d.variant == "reaction":
        sim.emit(
            "clinical.adverse_event", category="crs", grade=3, term="cytokine release syndrome"
        )

        def after() -> None:
            sim.later(12 * H, lambda: sim.emit("clinical.adverse_event", category="crs", grade=0))

    else:
        sim.emit("order.hold", reason="prescriber hold pending laboratory review")

        def after() -> None:
            sim.later(2 * H, lambda: sim.emit("order.released"))

    # a reaction's own finding comes first, so its onset is the reaction
    onset = sim.t if d.variant == "reaction" else sim.t + pause
    sim.mark(inj, onset, f"restarted {pause / H:g} h later while the hold was open")
    sim.interrupt(_Stop("user", pause, True, True, on_restart=after))


def _unreachable(sim: _PatientSim, inj: Injected) -> Proc:
    d = inj.deviation
    span = round((d.hours or 3) * H)
    yield from sim.when_running(sim.at(d), room_min=span + 2 * H)
    sim.mark(inj, detail=f"pump unreachable for {span / H:g} h")
    sim.emit("pump.connection_lost")
    sim.unreachable = True
    yield sim.env.timeout(span)
    sim.unreachable = False
    sim.emit("pump.connection_restored")


_POINT_KINDS: dict[str, Callable[[_PatientSim, Injected], Proc]] = {
    "bolus": _bolus,
    "occlusion": _occlusion,
    "long_interruption": _long_interruption,
    "grade4_restart": _grade4,
    "restart_during_hold": _hold,
    "pump_unreachable": _unreachable,
}


def _short_stops(sim: _PatientSim, cycle: int) -> Proc:
    """Clean noise: brief occlusions cleared by staff well inside 4 hours."""
    rate = sim.c.short_stops_per_cycle
    count = int(rate) + (1 if sim.rng.random() < rate - int(rate) else 0)
    for _ in range(count):
        at = sim.cycle_start + sim.rng.randint(DAY, 26 * DAY)
        pause = sim.rng.randint(10, 150)
        yield from sim.when_running(at, room_min=pause + 2 * H)
        if sim.cycle != cycle:
            return
        sim.interrupt(_Stop("occlusion", pause, False, False, alarm="occlusion"))


class Population:
    """Many patients in one SimPy environment; each with its own seeded stream of chance."""

    def __init__(self, origin: datetime, seed: int | str, edition: str = "seed") -> None:
        self.env = simpy.Environment()
        self.sink = _Sink(origin=origin - timedelta(days=1))
        self.seed = seed
        self.edition = edition
        self.sims: list[_PatientSim] = []

    def add(self, plan: PatientPlan) -> None:
        rng = random.Random(f"{self.seed}/{len(self.sims)}/{plan.patient.id}")
        floor = _PRESERVATIVE_MIN_KG[plan.patient.edition]
        sim = _PatientSim(self.env, self.sink, plan, rng, floor)
        self.sims.append(sim)
        self.env.process(sim.course())
        self.env.process(_watch_cycles(sim))

    def run(self) -> Generated:
        self.env.run()
        injected = [inj for sim in self.sims for inj in sim.injected]
        return Generated(self.sink.lines, injected, len(self.sims))


def _watch_cycles(sim: _PatientSim) -> Proc:
    """Start the clean short stops of each cycle, and keep ``bag_proc`` pointing at the pump."""
    seen = 0
    while True:
        ev = sim.env.event()
        sim.hang_listeners.append(ev)
        yield ev
        if sim.cycle != seen:
            seen = sim.cycle
            sim.env.process(_short_stops(sim, seen))
        if sim.stop_course and not sim.running:
            return


def generate(scenario: Scenario, seed: int | None = None) -> Generated:
    """One scenario's stream; ``seed`` overrides the scenario's own."""
    pop = Population(
        scenario.start, scenario.seed if seed is None else seed, scenario.patient.edition
    )
    pop.add(
        PatientPlan(
            scenario.patient,
            scenario.course,
            scenario.staff,
            scenario.deviations,
            scenario=scenario.name,
        )
    )
    return pop.run()


def generate_many(plans: Iterable[PatientPlan], origin: datetime, seed: int | str) -> Generated:
    """A population's stream, all patients interleaved in time order."""
    pop = Population(origin, seed)
    for plan in plans:
        pop.add(plan)
    return pop.run()
