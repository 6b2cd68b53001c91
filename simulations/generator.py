"""A SimPy generator of Blincyto courses: pump, nurse, pharmacy and admissions as processes.

Time is SimPy's ``env.now`` in whole minutes from an origin (integers, so no
float drift can move an event across a window's edge). Each patient draws from
its own ``random.Random``, seeded from the scenario seed and the patient's
index, so one patient's deviations never shift another patient's stream, and
the same scenario and seed give the same bytes.

Every clinical number (doses, windows, thresholds, cycle length and maxima,
premedication, preservative floor) comes from the :class:`Protocol` of the
loaded pack, edition and site included; the generator holds none of its own.
What a clean course looks like follows ``blincyto.md`` as revised: an order
before each cycle, admission for the indication's hospital window,
premedication where R-PREMED asks for it (adults before each cycle's first
dose; R/R adults also before a step-up and a restart after the reinitiation
threshold; children in cycle 1 only), bags dispensed with their label rate and
dose, changed on schedule by a professional without a flush, supervision at
cycle 3+ starts and long restarts.

:class:`~pumpguard.simulations.scenario.Behaviours` add what real feeds and
wards produce without any error: hot swaps, lost stops, lost cycle orders,
documentation at the very second of a start (listed before or after it),
weights recorded mid-course, preserved bags without their flag, interruptions
from minutes to days (longer than the limit: a new cycle is ordered), and
grade 3 reactions held and restarted by the book.

Deviations are injected at (cycle, day); each one records its onset (the
simulated time it became real), which scoring compares with the findings.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import simpy
from pumpguard.simulations.course import BAG_RATES, BAG_VOLUMES, iso
from pumpguard.simulations.protocol import Protocol, load_protocol, mosteller
from pumpguard.simulations.scenario import (
    Behaviours,
    Course,
    Deviation,
    Interruption,
    Patient,
    Reaction,
    Scenario,
    Staff,
)

__all__ = ["Generated", "Injected", "PatientPlan", "Population", "generate"]

H = 60
DAY = 1440
DRUG = "blinatumomab"
_ALLOWED_HOURS = (24, 48, 72, 96, 168)

_DEFAULT_ALLOW: dict[str, tuple[str, ...]] = {
    # a restart during a hold at the full dose is also a wrong dose (the start dose is due)
    "restart_during_hold": ("DOSE_MISMATCH",),
    "grade4_restart": ("DOSE_MISMATCH",),
    # with no step there is no step-up premedication; a rule keyed on day 8 may say so
    "dose_error": ("PREMEDICATION_MISSING",),
    # a restart after the 7- or 14-day window stays in its cycle: a new cycle was required
    "restart_after_discontinuation": ("DOSE_MISMATCH", "NEW_CYCLE_REQUIRED"),
    # to the engine the new cycle is a restart of the last: a child's restart premedication
    "lost_cycle_order": ("PREMEDICATION_MISSING",),
}

_AE = "clinical.adverse_event"

Proc = Generator[simpy.Event, Any, Any]
Doc = Callable[[], Any]


@dataclass
class Injected:
    """A deviation as injected: its patient, its onset in simulated time, the codes owed."""

    patient_id: str
    deviation: Deviation
    scenario: str = ""
    onset: datetime | None = None
    detail: str = ""
    owed: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.deviation.kind

    @property
    def codes(self) -> tuple[str, ...]:
        return self.owed

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
    behaviours: Behaviours = field(default_factory=Behaviours)


@dataclass
class Generated:
    """A generated stream: canonical JSONL lines in time order, and what was injected."""

    lines: list[str]
    injected: list[Injected]
    patients: int
    seen: dict[str, int] = field(default_factory=dict)
    """How often each behaviour happened (``hot_swap``, ``lost_stop``...), for reports."""

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
    end_cycle: bool = False
    final: bool = False


@dataclass
class _Result:
    # completed | stopped (by the nurse) | expired (long stop) | swap (hot) | cut | final
    status: str
    infused: int
    stop: _Stop | None = None


@dataclass
class _Sink:
    """Collects every patient's lines in emission order (SimPy emits in time order)."""

    origin: datetime
    lines: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)


class _PatientSim:
    """One patient's processes; all randomness from ``rng``, all numbers from ``proto``."""

    def __init__(
        self,
        env: simpy.Environment,
        sink: _Sink,
        plan: PatientPlan,
        rng: random.Random,
        proto: Protocol,
    ) -> None:
        self.env = env
        self.sink = sink
        self.plan = plan
        self.p = plan.patient
        self.c = plan.course
        self.b = plan.behaviours
        self.staff = plan.staff
        self.rng = rng
        self.proto = proto
        self.weight = plan.patient.weight_kg
        self.bsa = plan.patient.bsa()
        self.floor_kg = proto.num("preservative_min_weight_kg")
        self.cycle_min = proto.minutes("cycle_length_h")
        self.step_min = proto.minutes("step_up_infusion_h")
        # step when the bag would start less than (early allowance - 1 h) before the step
        self.step_early = proto.minutes("step_up_early_h") - H
        self.reinit_min = proto.minutes("reinit_threshold_h")
        self.max_pause = proto.minutes("interruption_max_h")
        self.premed_lead_max = proto.minutes("premedication_window_h") - 10
        self.doc_delay_max = proto.minutes("supervision_window_h") - 5
        self.late_max = proto.minutes("bag_grace_h") - 15
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
        self.step_delay = 0
        self.forgot: Injected | None = None
        self.adult_dosing = False
        self.no_step = False
        self.stop_course = False
        self.cut_gap: int | None = None
        self.base_pump = self.pump_id
        self.current = _Bag("", 24, 0.0)
        self.rate = 0.0
        self.next_hang = 0
        self.next_bag: simpy.Process | None = None
        self.lost_at: int | None = None
        self.before: list[Doc] = []
        self.after: list[Doc] = []
        self.overdue_next: Injected | None = None
        self.injected = [
            Injected(self.pid, d, scenario=plan.scenario, owed=d.owed(plan.patient, proto))
            for d in plan.deviations
        ]
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

    def saw(self, behaviour: str) -> None:
        self.sink.seen[behaviour] = self.sink.seen.get(behaviour, 0) + 1

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

    def act(self, type_: str, **fields: Any) -> str:
        """A pump act with the documentation waiting for it, in the order it was listed."""
        before, after = self.before, self.after
        self.before, self.after = [], []
        for fn in before:
            fn()
        eid = self.emit(type_, **fields)
        for fn in after:
            fn()
        return eid

    def draw(self, span: tuple[int, int]) -> int:
        return self.rng.randint(span[0], span[1])

    # staff habits, kept inside the pack's windows (a site may narrow them)
    def lead(self) -> int:
        """Minutes between premedication and the start it is for."""
        return min(self.draw(self.staff.premedication_lead_min), self.premed_lead_max)

    def doc_delay(self) -> int:
        return min(self.draw(self.staff.documentation_delay_min), self.doc_delay_max)

    def late(self) -> int:
        return min(self.draw(self.staff.bag_change_late_min), self.late_max)

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

    def due_by(self, kind: str, at: int) -> Injected | None:
        """A pending deviation of ``kind`` due at or before ``at`` (not taken)."""
        for inj in self.pending:
            d = inj.deviation
            if d.kind == kind and d.cycle == self.cycle and at >= self.at(d):
                return inj
        return None

    def cycle_dev(self, kind: str, cycle: int, variant: str | None = None) -> Injected | None:
        for inj in self.pending:
            d = inj.deviation
            if d.kind == kind and d.cycle == cycle and (variant is None or d.variant == variant):
                self.pending.remove(inj)
                return inj
        return None

    def at(self, d: Deviation | Reaction | Interruption) -> int:
        return self.cycle_start + round((d.day - 1) * DAY)

    # -- clinical numbers (all from the pack) ------------------------------------
    def doses(self) -> tuple[float, float]:
        """(start, full) mcg/day for this patient's band now; adult numbers in a dose error."""
        if self.adult_dosing:
            return self.proto.adult_doses()
        return self.proto.doses(self.weight, self.bsa)

    def dose_at(self, inf_min: int) -> float:
        start, target = self.doses()
        if self.no_step:
            return start
        if self.step_from is None:
            return target
        due = self.step_from + self.step_min + self.step_delay - self.step_early
        return target if inf_min >= due else start

    def premed(self) -> None:
        options = self.proto.premed_doses(self.p.age_years, self.p.indication, self.bsa)
        drug, mg = options[0] if len(options) == 1 else self.rng.choice(options)
        self.emit("medication.administered", drug=drug, dose_mg=mg, route="IV")

    def premed_restart(self) -> bool:
        if self.staff.premedication == "every_moment":
            return True
        return self.proto.premed_at_restart(self.p.age_years, self.p.indication, self.cycle)

    def premed_step(self) -> bool:
        if self.staff.premedication == "every_moment":
            return True
        return self.proto.premed_at_step_up(self.p.age_years, self.p.indication, self.cycle)

    def premed_start(self, cycle: int) -> bool:
        if self.staff.premedication == "every_moment":
            return True
        return self.proto.premed_at_cycle_start(self.p.age_years, cycle)

    def bag_hours(self, inf_min: int, prefer_home: bool) -> int:
        pref: int = self.c.home_bag_hours if prefer_home else self.c.inpatient_bag_hours
        if self.weight < self.floor_kg:
            pref = min(pref, 48)
        limit = pref
        if self.step_from is not None and not self.no_step:
            to_step = self.step_from + self.step_min + self.step_delay - inf_min
            if to_step > self.step_early:
                limit = min(limit, max(h for h in _ALLOWED_HOURS if h * H <= max(to_step, DAY)))
        return limit

    # -- pharmacy --------------------------------------------------------------
    def dispense(self, hours: int, dose: float, *, flag: bool | None = None) -> _Bag:
        """Label a bag; a preserved one carries the flag (``flag=False``: left out)."""
        self.bag_n += 1
        bag = _Bag(f"{self.pid}-BAG{self.bag_n:03d}", hours, dose)
        preserved = hours >= 72
        if flag is None and preserved:
            flag = True
            if self.b.unflagged_preservative and self.rng.random() < self.b.unflagged_preservative:
                # the spec reads the bag's duration, not the flag: a 72 h+ bag is preserved
                self.saw("unflagged_preservative")
                flag = False
        if preserved and flag is False:
            flag = None  # an unknown value is left out, never sent as false
        self.emit(
            "bag.dispensed",
            bag_id=bag.bag_id,
            drug=DRUG,
            dose_mcg_day=dose,
            duration_h=hours,
            rate_ml_h=BAG_RATES[hours],
            volume_ml=BAG_VOLUMES[hours],
            preservative=flag if preserved else False,
        )
        return bag

    def pharmacy(self, at: int, plan: Callable[[], tuple[int, float]]) -> simpy.Process:
        """The pharmacy process: at ``at`` it labels and dispenses the bag ``plan`` describes."""

        def proc() -> Proc:
            yield self.env.timeout(max(0, at - self.t))
            hours, dose = plan()
            small = self.take("preservative_bag_small_patient")
            if small is not None:
                hours = 168 if small.deviation.variant == "flagged" else 96
                flagged = small.deviation.variant != "unflagged"
                bag = self.dispense(hours, dose, flag=flagged)
                self.mark(small, detail=f"{hours} h preserved bag for a {self.weight:g} kg patient")
                return bag
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
        """Admit 2 h before the cycle (or at its very second), discharge after ``days``."""
        if days <= 0:
            return
        if not exact and self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_admission")
            yield self.env.timeout(max(0, start - 3 * H - self.t))
            self.hospitalized = True  # decided now, written at the start's second
            (self.before if self.rng.random() < 0.5 else self.after).append(
                lambda: self.emit("encounter.admitted", setting="inpatient", location="Ward")
            )
        else:
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
        if self.p.height_cm is not None:
            extra["height_cm"] = self.p.height_cm
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
                elif self.cut_gap is not None:
                    gap = self.cut_gap  # the cycle was cut short: the new one starts now
                else:
                    free_h = self.proto.treatment_free_h(self.p.indication, cycle - 1)
                    free_days = max(self.c.treatment_free_days or 0, free_h / 24)
                    gap = round(free_days * DAY) + self.rng.randint(60, 3 * DAY)
                start = last_end + gap
                if short is not None:
                    self.mark(short, start, f"cycle {cycle} starts {gap / DAY:.1f} days after")
            self.cut_gap = None
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
        if cycle <= 2:
            return "induction"
        if cycle < self.proto.num("continued_first_cycle"):
            return "consolidation"
        # the spec reads cycles 6 to 9 by their number, whatever the order's phase says
        return "consolidation" if self.b.mislabelled_phase else "continued"

    def hospital_days(self, cycle: int) -> float:
        if cycle in self.c.inpatient_days:
            return self.c.inpatient_days[cycle]
        if not self.c.home_infusion:
            return self.cycle_min / DAY
        return self.proto.hospital_days(self.p.indication, cycle)

    def run_cycle(self, cycle: int, start: int) -> Proc:
        """One cycle from order to last stop; returns the last stop's time."""
        env = self.env
        yield env.timeout(max(0, start - 6 * H - self.t))
        self.cycle = cycle
        self.cycle_start = start
        self.inf_done = 0
        rr_first = self.p.indication == "relapsed_refractory" and cycle == 1
        self.step_from = 0 if rr_first else None
        self.step_delay = 0
        no_step = self.cycle_dev("dose_error", cycle, "no_step_up")
        self.no_step = no_step is not None
        forgot = self.cycle_dev("dose_error", cycle, "step_up_forgotten")
        if forgot is not None:
            # the nurse keeps hanging starting-dose bags past the late limit, then steps
            self.step_delay = self.proto.minutes("step_up_late_h") + DAY
            self.forgot = forgot
        child = self.cycle_dev("dose_error", cycle, "child_as_adult")
        self.adult_dosing = child is not None
        beyond = self.cycle_dev("beyond_max_cycles", cycle)
        if beyond is not None:
            self.mark(beyond, start, f"cycle {cycle} ordered and started")
        first_dose = self.dose_at(0)

        def order() -> None:
            self.emit(
                "cycle.ordered", cycle=cycle, phase=self.phase(cycle), dose_mcg_day=first_dose
            )

        lost = self.cycle_dev("lost_cycle_order", cycle)
        if lost is not None:
            # the feed lost this one order: under orders, the start continues the last
            # cycle, past its 28 days and after more than 7 without infusion
            self.mark(
                lost, start, f"cycle {cycle} order lost; its start continues cycle {cycle - 1}"
            )
        elif self.b.lost_orders:
            self.saw("lost_order")
        elif self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_order")
            (self.before if self.rng.random() < 0.5 else self.after).append(order)
        else:
            order()
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
            self.mark(no_step, start + self.step_min, "dose left at the starting dose past day 8")
        first = self.pharmacy(
            start - self.rng.randint(120, 240),
            lambda: (self.bag_hours(0, prefer_home), first_dose),
        )
        lead = self.lead()
        yield env.timeout(max(0, start - lead - self.t))
        if self.premed_start(cycle):
            if self.b.same_second and self.rng.random() < self.b.same_second:
                self.saw("same_second_premedication")
                (self.before if self.rng.random() < 0.5 else self.after).append(self.premed)
            else:
                self.premed()
        bag = yield first
        yield env.timeout(max(0, start - self.t))
        if child is not None:
            self.mark(child, start, f"dosed {first_dose:g} mcg/day as an adult")
        if cycle >= 3 and not self.hospitalized:
            if unsupervised is None:
                self.supervise_at_act()
            else:
                self.mark(unsupervised, start, "cycle started at home with no professional")
        for inj in list(self.pending):
            if inj.deviation.cycle == cycle and inj.kind in _POINT_KINDS:
                self.pending.remove(inj)
                env.process(_POINT_KINDS[inj.kind](self, inj))
        for r in self.b.reactions:
            if r.cycle == cycle:
                env.process(_reaction_hold(self, r))
        for i in self.b.interruptions:
            if i.cycle == cycle:
                env.process(_interruption(self, i))
        if self.b.weights_per_cycle:
            env.process(_weights(self, cycle))
        end = yield env.process(self.infuse(bag))
        cycle_end.succeed()
        return end

    def supervise_at_act(self) -> None:
        """Supervision of the coming start: a few minutes after it, or at its very second."""
        fn: Doc = lambda: self.emit("nursing.supervision", actor_role=self.role())  # noqa: E731
        if self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_supervision")
            (self.before if self.rng.random() < 0.5 else self.after).append(fn)
        else:
            delay = self.doc_delay()
            self.after.append(lambda: self.later(delay, fn))

    # -- nurse: the bag loop ------------------------------------------------------
    def infuse(self, bag: _Bag) -> Proc:
        """Hang bags until the cycle's infusion is complete; returns the last stop's time."""
        env = self.env
        first = True
        hot = False
        while True:
            self.bag_proc = env.process(self.hang(bag, first=first, hot=hot))
            result = yield self.bag_proc
            first = False
            hot = False
            self.inf_done += result.infused
            if result.status in ("cut", "final"):
                if result.status == "cut" and result.stop is not None:
                    self.cut_gap = result.stop.pause_min
                return self.t
            done = self.inf_done >= self.cycle_min
            if done or (self.stop_course and result.status not in ("expired", "swap")):
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
            if result.status == "swap":
                assert self.next_bag is not None
                bag = yield self.next_bag
                self.change(bag, hot=True)
                hot = True
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

    def change(self, bag: _Bag, *, hot: bool = False) -> None:
        """The nurse's bag change: the pump learns the bag, the chart a little later."""
        prev = self.current.bag_id
        flush_doc = flush_pump = carer = None
        if not hot:
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
            self.doc_delay(),
            lambda: self.emit(
                "nursing.bag_change", bag_id=bag_id, actor_role=role, line_flushed=flushed
            ),
        )

    def restart_with_new_bag(self, stop: _Stop) -> Proc:
        """After a stop that outlived the bag: a new bag, premedication and supervision."""
        env = self.env
        restart = self.t + stop.pause_min
        lead = self.lead()
        if stop.reset_dose:
            self.step_from = self.inf_done
        prefer_home = not self.hospitalized
        dispensed = self.pharmacy(
            restart - self.rng.randint(120, 240),
            lambda: (self.bag_hours(self.inf_done, prefer_home), self.dose_at(self.inf_done)),
        )
        if stop.premed and stop.pause_min > lead:
            yield env.timeout(stop.pause_min - lead)
            self.premed_or_same_second()
        yield env.timeout(max(0, restart - self.t))
        bag = yield dispensed
        if stop.on_restart is not None:
            stop.on_restart()
        if stop.supervise:
            self.supervise_at_act()
        self.next_hang = self.t
        self.change(bag)
        return bag

    def premed_or_same_second(self) -> None:
        if self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_premedication")
            (self.before if self.rng.random() < 0.5 else self.after).append(self.premed)
        else:
            self.premed()

    # -- pump ------------------------------------------------------------------
    def hang(self, bag: _Bag, *, first: bool, hot: bool = False) -> Proc:
        """The pump runs one bag until it is empty, the nurse changes it, or a long stop."""
        env = self.env
        if not first and not hot:
            yield env.timeout(self.rng.randint(1, 4))
        if self.lost_at is not None:
            # the engine never saw the stop: to it the drug ran on, so the cycle's total does
            self.inf_done += self.t - self.lost_at
            self.lost_at = None
        self.current = bag
        self.hang_min = self.t
        dose = bag.dose
        remaining = min(bag.hours * H, self.cycle_min - self.inf_done)
        change_due = self.t + bag.hours * H
        mismatch = None
        if hot:
            swap_rate = self.take("hot_swap_wrong_rate")
            if swap_rate is not None:
                self.mark(
                    swap_rate, detail=f"hot swap to a {bag.hours} h bag left at {self.rate:g}"
                )
                fix = round((swap_rate.deviation.hours or 2) * H)
                self.later(fix, lambda: self.fix_rate(bag))
            else:
                self.rate = BAG_RATES[bag.hours]
            overdue = self.overdue_next
            self.overdue_next = None
            if overdue is not None:
                extra = round((overdue.deviation.hours or 3) * H)
                self.mark(overdue, self.t + bag.hours * H, f"swapped bag left {extra / H:g} h over")
                remaining = min(remaining + extra, self.cycle_min - self.inf_done)
                change_due += extra
        else:
            self.rate = BAG_RATES[bag.hours]
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
                self.rate = BAG_RATES[24] if bag.hours != 24 else BAG_RATES[48]
                self.mark(mismatch, detail=f"{bag.hours} h bag programmed at {self.rate:g} mL/h")
            mg = self.take("dose_error", "mg_for_mcg")
            if mg is not None:
                dose = bag.dose * 1000
                self.mark(mg, detail=f"programmed {dose:g} mcg/day (mg entered as mcg)")
            # a bag cut short by the cycle's end cannot run past its time: wait for a full one
            full = bag.hours * H + 6 * H <= self.cycle_min - self.inf_done
            overdue = self.take("bag_overdue") if full else None
            if overdue is not None:
                extra = round((overdue.deviation.hours or 3) * H)
                self.mark(overdue, self.t + bag.hours * H, f"bag left {extra / H:g} h past time")
                remaining = min(remaining + extra, self.cycle_min - self.inf_done)
                change_due += extra
            self.act(
                "pump.infusion_started",
                drug=DRUG,
                rate_ml_h=self.rate,
                dose_mcg_day=dose,
                bag_id=bag.bag_id,
                vtbi_ml=BAG_VOLUMES[bag.hours],
            )
        self.mark_forgotten(bag, remaining)
        self.running = True
        for ev in self.hang_listeners:
            if not ev.triggered:
                ev.succeed()
        self.hang_listeners = []
        if mismatch is not None:
            fix = round((mismatch.deviation.hours or 2) * H)
            self.later(fix, lambda: self.fix_rate(bag))
        late = self.late()
        self.change_due = change_due
        self.next_hang = change_due + late
        # pharmacy prepares the next bag a few hours before it is due
        predicted = self.inf_done + remaining
        self.next_bag = None
        swap = False
        if predicted < self.cycle_min:
            prefer_home = not self.hospitalized or self.hospital_left(change_due)
            step_before = self.dose_at(self.inf_done)

            def plan() -> tuple[int, float]:
                return self.bag_hours(predicted, prefer_home), self.dose_at(predicted)

            self.next_bag = self.pharmacy(change_due - self.rng.randint(120, 240), plan)
            if self.dose_at(predicted) > step_before and self.premed_step():
                lead = self.lead()
                self.later(max(0, self.next_hang - lead - self.t), self.premed)
            forced = self.due_by("hot_swap_wrong_rate", change_due) or self.due_by(
                "hot_swap_overdue", change_due
            )
            roll = self.b.hot_swap and self.rng.random() < self.b.hot_swap
            if forced is not None or roll:
                # a hot swap: the nurse hangs the next bag a little before this one empties
                swap = True
                self.next_hang = max(self.t + 30, change_due - self.rng.randint(5, 30))
        infused = 0
        ran = 0
        while remaining > 0:
            seg = min(remaining, self.next_hang - self.t)
            if seg <= 0:
                if swap and self.swap_ready(bag):
                    return _Result("swap", infused)
                self.stop_or_lose("pump.infusion_stopped", bag, reason="user")
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
                if stop.final:
                    return _Result("final", infused, stop)
                if stop.end_cycle:
                    return _Result("cut", infused, stop)
                if stop.new_bag_needed or self.t + stop.pause_min >= change_due - 30:
                    return _Result("expired", infused, stop)
                yield from self.pause(stop)
                self.running = True
        self.running = False
        self.emit("pump.alarm", alarm="end_of_infusion")
        self.stop_or_lose("pump.infusion_completed", bag, bag_id=bag.bag_id)
        return _Result("completed", infused)

    def swap_ready(self, bag: _Bag) -> bool:
        """A hot swap happens when the next bag is ready and runs like this one (or a drill
        asks for a wrong-rate or overdue swap)."""
        nxt = self.next_bag
        if nxt is None or not nxt.triggered:
            return False
        # a deviation made when a bag is hung needs a hang, not a swap
        if any(self.due_by(kind, self.t) for kind in _HANG_KINDS):
            return False
        new = cast(_Bag, nxt.value)
        wrong = self.take("hot_swap_wrong_rate")
        if wrong is not None:
            # the drill's bag: another duration, so another label rate, same dose
            alt = 48 if bag.hours == 24 else 24
            self.next_bag = self.env.process(self._now(self.dispense(alt, new.dose)))
            self.pending.insert(0, wrong)  # taken again by the swapped bag's hang
            self.saw("hot_swap")
            return True
        if new.dose != bag.dose or new.hours != bag.hours:
            return False
        overdue = self.take("hot_swap_overdue")
        if overdue is not None:
            if new.hours * H + 6 * H > self.cycle_min - self.inf_done - (self.t - self.hang_min):
                self.pending.insert(0, overdue)
                return False
            self.overdue_next = overdue
        self.saw("hot_swap")
        return True

    def _now(self, value: _Bag) -> Proc:
        yield self.env.timeout(0)
        return value

    def stop_or_lose(self, type_: str, bag: _Bag, **fields: Any) -> None:
        """A stop at a bag change; with ``lost_stop`` it never reaches the engine."""
        # only where a start follows (never the last stop of a cycle or a course): a stop
        # lost before a long gap would be a drug the engine must believe still running;
        # and only before a bag that runs like this one: without its stop, the next bag's
        # change reads as a hot swap, and a hot swap to another label rate is a deviation
        # and not where the next bag may go on another pump (the engine would see two pumps
        # delivering), nor at the cycle's last bag change (the gap would pass 28 days)
        nxt = self.next_bag
        follows = nxt is not None and not self.stop_course
        alike = (
            nxt is not None
            and nxt.triggered
            and cast(_Bag, nxt.value).hours == bag.hours
            and cast(_Bag, nxt.value).dose == bag.dose
        )
        same_pump = self.pump_id == self.base_pump and not any(
            i.deviation.kind == "elastomeric_pump" for i in self.pending
        )
        room = self.cycle_min - self.inf_done > 2 * bag.hours * H + H
        lose = follows and alike and same_pump and room
        if lose and self.b.lost_stop and self.rng.random() < self.b.lost_stop:
            self.saw("lost_stop")
            self.lost_at = self.t
            return
        self.emit(type_, **fields)

    def mark_forgotten(self, bag: _Bag, remaining: int) -> None:
        """A forgotten step-up becomes certain when infusion passes the late limit."""
        inj = self.forgot
        if inj is None or self.step_from is None or inj.onset is not None:
            return
        start, _ = self.doses()
        if abs(bag.dose - start) > 1e-9:
            return
        limit = self.step_from + self.step_min + self.proto.minutes("step_up_late_h")
        if self.inf_done >= limit:
            self.mark(inj, detail="step-up forgotten at a bag change")
        elif self.inf_done + remaining > limit:
            self.mark(inj, self.t + limit - self.inf_done, "step-up forgotten past the limit")

    def hospital_left(self, at: int) -> bool:
        days = self.hospital_days(self.cycle)
        return at >= self.cycle_start + days * DAY

    def fix_rate(self, bag: _Bag) -> None:
        if self.running and self.current is bag:
            self.rate = BAG_RATES[bag.hours]
            self.emit("pump.rate_changed", rate_ml_h=self.rate, dose_mcg_day=bag.dose)

    def pause(self, stop: _Stop) -> Proc:
        """A stop on the same bag: wait, premedicate before a long restart, resume."""
        env = self.env
        resume_at = self.t + stop.pause_min
        lead = self.lead()
        if stop.premed and stop.pause_min > lead:
            yield env.timeout(stop.pause_min - lead)
            self.premed_or_same_second()
        yield env.timeout(max(0, resume_at - self.t))
        if stop.alarm:
            self.emit("pump.alarm", alarm=stop.alarm, cleared=True)
        if stop.on_restart is not None:
            stop.on_restart()
        if stop.supervise:
            self.supervise_at_act()
        self.act("pump.infusion_resumed", rate_ml_h=self.rate)

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

    def restart_stop(self, reason: str, pause: int, **kw: Any) -> _Stop:
        """A stop whose restart gets the care the pack asks for after ``pause`` minutes."""
        long = pause >= self.reinit_min
        return _Stop(reason, pause, long and self.premed_restart(), long, **kw)


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
    sim.interrupt(sim.restart_stop("user", pause, new_bag_needed=True))


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
    sim.interrupt(sim.restart_stop("user", pause, reset_dose=True, new_bag_needed=True))
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
    sim.interrupt(sim.restart_stop("user", pause, on_restart=after))


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


def _weight_cross(sim: _PatientSim, inj: Injected) -> Proc:
    """A weight recorded while the drug runs moves the patient across the dosing band."""
    d = inj.deviation
    yield from sim.when_running(sim.at(d), room_min=2 * H)
    band = sim.proto.num("weight_band_kg")
    new = round(band - 2.5 if sim.weight >= band else band + 2.0, 1)
    old_bsa = sim.bsa
    if sim.p.height_cm is not None:
        bsa = mosteller(sim.p.height_cm, new)
    else:
        bsa = (old_bsa or 1.0) * math.sqrt(new / sim.weight)
    recorded = round(bsa, 2) if sim.p.bsa_m2 is not None else None
    before = sim.current.dose
    sim.weight, sim.bsa = new, (recorded if recorded is not None else bsa)
    sim.mark(inj, detail=f"weight {new:g} kg recorded while {before:g} mcg/day ran")
    sim.emit("patient.weight_recorded", weight_kg=new, bsa_m2=recorded)


def _discontinuation(sim: _PatientSim, inj: Injected) -> Proc:
    """A grade 3 reaction that makes discontinuation certain; optionally restarted after."""
    d = inj.deviation
    variant = d.variant or "neuro_unresolved"
    category = "neurotoxicity" if variant.startswith("neuro") else variant.split("_unres")[0]
    yield from sim.when_running(sim.at(d), room_min=2 * H)
    sim.mark(inj, detail=f"grade 3 {category} ({variant})")
    sim.emit("clinical.adverse_event", category=category, grade=3, term=variant)
    window = sim.proto.minutes(
        "neuro_discontinue_h" if category == "neurotoxicity" else "other_discontinue_h"
    )
    if variant == "neuro_at_start_dose":
        better = DAY  # grade 1 on the next day; the start dose already decided it
    else:
        better = window + 12 * H  # documented only after the window closed
        sim.later(
            window // 2, lambda: sim.emit("clinical.adverse_event", category=category, grade=2)
        )
    sim.later(better, lambda: sim.emit("clinical.adverse_event", category=category, grade=1))
    restart = d.kind == "restart_after_discontinuation"
    resolution = sim.proto.minutes("neuro_resolution_h") if category == "neurotoxicity" else 0
    pause = better + resolution + 6 * H
    yield sim.env.timeout(sim.rng.randint(5, 30))
    if restart:
        sim.stop_course = True
        sim.interrupt(
            _Stop("user", pause, sim.premed_restart(), True, reset_dose=True, new_bag_needed=True)
        )
    else:
        sim.stop_course = True
        sim.interrupt(_Stop("user", pause, False, False, final=True))


_HANG_KINDS = ("bag_overdue", "rate_mismatch", "elastomeric_pump", "dose_error")
"""Deviations placed when a bag is hung (not swapped in)."""

_POINT_KINDS: dict[str, Callable[[_PatientSim, Injected], Proc]] = {
    "bolus": _bolus,
    "occlusion": _occlusion,
    "long_interruption": _long_interruption,
    "grade4_restart": _grade4,
    "restart_during_hold": _hold,
    "pump_unreachable": _unreachable,
    "weight_crosses_band": _weight_cross,
    "reaction_discontinuation": _discontinuation,
    "restart_after_discontinuation": _discontinuation,
}


# -- clean behaviours ------------------------------------------------------------------


def _reaction_hold(sim: _PatientSim, r: Reaction) -> Proc:
    """Grade 3 reaction: the pump is stopped, the hold closes by the book, restart low."""
    yield from sim.when_running(sim.at(r), room_min=2 * H)
    if sim.cycle != r.cycle or sim.stop_course:
        return
    start, full = sim.doses()
    if abs(sim.current.dose - full) > 1e-9 or full == start:
        return  # only at the full dose: a grade 3 neurotoxicity at the start dose ends treatment
    sim.saw(f"reaction_{r.category}")
    neuro = r.category in ("neurotoxicity", "seizure")
    resolution = sim.proto.minutes("neuro_resolution_h") if neuro else 0
    after = round(r.restart_after_h * H)
    # the hold stays within the interruption limit, so the restart continues the cycle
    better = min(round(r.resolve_days * DAY), sim.max_pause - resolution - after - 2 * H)
    better = max(better, 2 * H)
    pause = better + resolution + after
    cat = r.category

    def doc(grade: int) -> Doc:
        return lambda: sim.emit("clinical.adverse_event", category=cat, grade=grade)

    # the nurse stops the pump first, then documents the reaction (after the stop's second)
    sim.interrupt(sim.restart_stop("user", pause, reset_dose=True, new_bag_needed=True))
    sim.later(sim.rng.randint(2, 20), doc(3))
    if cat == "seizure":
        sim.later(better, doc(0))  # a seizure's end is its grade 0; a grade 1 would be another
    elif cat == "crs":
        sim.later(better // 2, doc(2))
        sim.later(better, doc(0))
    else:
        sim.later(better // 2, doc(2))
        sim.later(better, doc(1))
        if neuro and resolution > DAY:
            sim.later(better + DAY, doc(0))  # a later grade 0 does not restart the 3 days


def _interruption(sim: _PatientSim, i: Interruption) -> Proc:
    """A clean stop: resumed on the same bag, restarted on a new one, or a new cycle."""
    pause = round(i.hours * H)
    yield from sim.when_running(sim.at(i), room_min=min(pause, DAY) + 2 * H)
    if sim.cycle != i.cycle or sim.stop_course:
        return
    if pause > sim.max_pause:
        sim.saw("interruption_new_cycle")
        sim.interrupt(sim.restart_stop("user", pause, end_cycle=True))
        return
    sim.saw("interruption")
    sim.interrupt(sim.restart_stop("user", pause))


def _weights(sim: _PatientSim, cycle: int) -> Proc:
    """Weights recorded mid-course that stay in the patient's band (no dose change due)."""
    band = sim.proto.num("weight_band_kg")
    for _ in range(sim.b.weights_per_cycle):
        at = sim.cycle_start + sim.rng.randint(DAY, sim.cycle_min - 3 * DAY)
        yield from sim.when_running(at)
        if sim.cycle != cycle:
            return
        new = round(sim.weight * (1 + sim.rng.uniform(-0.015, 0.015)), 1)
        if (new >= band) != (sim.weight >= band):
            continue
        if (new >= sim.floor_kg) != (sim.weight >= sim.floor_kg):
            continue
        bsa = None
        if sim.p.bsa_m2 is not None and sim.bsa is not None:
            bsa = round(sim.bsa * math.sqrt(new / sim.weight), 2)
        sim.saw("weight_mid_course")
        sim.emit("patient.weight_recorded", weight_kg=new, bsa_m2=bsa)


def _short_stops(sim: _PatientSim, cycle: int) -> Proc:
    """Clean noise: brief occlusions cleared by staff well inside the reinitiation threshold."""
    rate = sim.c.short_stops_per_cycle
    count = int(rate) + (1 if sim.rng.random() < rate - int(rate) else 0)
    longest = max(10, min(150, sim.reinit_min - 30))
    for _ in range(count):
        at = sim.cycle_start + sim.rng.randint(DAY, sim.cycle_min - 2 * DAY)
        pause = sim.rng.randint(min(10, longest), longest)
        yield from sim.when_running(at, room_min=pause + 2 * H)
        if sim.cycle != cycle:
            return
        sim.interrupt(_Stop("occlusion", pause, False, False, alarm="occlusion"))


class Population:
    """Many patients in one SimPy environment; each with its own seeded stream of chance."""

    def __init__(self, origin: datetime, seed: int | str, protocol: Protocol) -> None:
        self.env = simpy.Environment()
        self.sink = _Sink(origin=origin - timedelta(days=1))
        self.seed = seed
        self.protocol = protocol
        self.sims: list[_PatientSim] = []

    def add(self, plan: PatientPlan) -> None:
        rng = random.Random(f"{self.seed}/{len(self.sims)}/{plan.patient.id}")
        sim = _PatientSim(self.env, self.sink, plan, rng, self.protocol)
        self.sims.append(sim)
        self.env.process(sim.course())
        self.env.process(_watch_cycles(sim))

    def run(self) -> Generated:
        self.env.run()
        injected = [inj for sim in self.sims for inj in sim.injected]
        return Generated(
            self.sink.lines, injected, len(self.sims), dict(sorted(self.sink.seen.items()))
        )


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


def generate(
    scenario: Scenario, protocol: Protocol | None = None, seed: int | None = None
) -> Generated:
    """One scenario's stream under ``protocol`` (default: the scenario's edition and site)."""
    if protocol is None:
        _, protocol = load_protocol(scenario.patient.edition, scenario.site_file)
    scenario.check(protocol)
    pop = Population(scenario.start, scenario.seed if seed is None else seed, protocol)
    pop.add(
        PatientPlan(
            scenario.patient,
            scenario.course,
            scenario.staff,
            scenario.deviations,
            scenario=scenario.name,
            behaviours=scenario.behaviours,
        )
    )
    return pop.run()
