"""The base of one simulated patient: its state, its clock, its writer and its bookkeeping.

:class:`PatientBase` holds what every layer of the generator reads: the
plan, the seeded ``random.Random``, the pack's numbers, the emitted stream
(through the shared :class:`~pumpguard.engine.builder.EventBuilder`, so ids
and times follow the same conventions as every other stream), the pending
deviations, and the clinical numbers of the patient's band. The layers above
add the ward (``ward``), the pump (``pump``), the nurse (``nursing``) and the
prescriber (``cycles``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import simpy
from pumpguard.engine.builder import EventBuilder
from pumpguard.simulations.protocol import Protocol
from pumpguard.simulations.records import (
    ALLOWED_HOURS,
    DAY,
    Bag,
    Doc,
    H,
    Injected,
    PatientPlan,
    Proc,
    Sink,
)
from pumpguard.simulations.scenario import Deviation, Interruption, Reaction

__all__ = ["PatientBase"]


class PatientBase:
    """One patient's state; all randomness from ``rng``, all numbers from ``proto``."""

    def __init__(
        self,
        env: simpy.Environment,
        sink: Sink,
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
        self.pid = plan.patient.id
        self.writer = EventBuilder(self.pid, f"PUMP-{self.pid}")
        self.base_pump = self.pump_id
        self._pack_numbers(proto)
        self._course_state()
        self.injected = [
            Injected(self.pid, d, scenario=plan.scenario, owed=d.owed(plan.patient, proto))
            for d in plan.deviations
        ]
        self.pending: list[Injected] = list(self.injected)

    def _pack_numbers(self, proto: Protocol) -> None:
        """The pack's windows in minutes, and the staff limits kept inside them."""
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

    def _course_state(self) -> None:
        """Where the course, the cycle and the pump stand (all start empty)."""
        self.bag_n = 0
        self.hospitalized = False
        self.running = False
        self.unreachable = False
        self.bag_proc: simpy.Process | None = None
        self.hang_min = 0
        self.paused_in_bag = 0
        """Minutes the hung bag has stood paused (its wall time runs; its infusion does not)."""
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
        self.current = Bag("", 24, 0.0)
        self.rate = 0.0
        self.next_hang = 0
        self.next_bag: simpy.Process | None = None
        self.lost_at: int | None = None
        self.before: list[Doc] = []
        self.after: list[Doc] = []
        self.overdue_next: Injected | None = None
        self.hang_listeners: list[simpy.Event] = []

    @property
    def t(self) -> int:
        """Now, in whole minutes (every delay is an integer, so this is exact)."""
        return int(self.env.now)

    @property
    def pump_id(self) -> str:
        """The pump the drug runs on now (another one while a bag hangs elsewhere)."""
        return self.writer.pump_id or ""

    @pump_id.setter
    def pump_id(self, value: str) -> None:
        self.writer.pump_id = value

    # -- emitting -------------------------------------------------------------
    def emit(self, type_: str, **fields: Any) -> None:
        """Write one canonical event at ``self.t``; pump events are lost while unreachable."""
        if (
            self.unreachable
            and type_.startswith("pump.")
            and not type_.startswith("pump.connection")
        ):
            return
        self.sink.lines.append(self.writer.line(type_, self.when(self.t), **fields))

    def saw(self, behaviour: str) -> None:
        self.sink.seen[behaviour] = self.sink.seen.get(behaviour, 0) + 1

    def when(self, at: float) -> datetime:
        return self.sink.origin + timedelta(minutes=at)

    def later(self, delay: int, fn: Callable[[], Any]) -> None:
        """Run ``fn`` ``delay`` minutes from now (documentation written after the act)."""

        def proc() -> Proc:
            yield self.env.timeout(delay)
            fn()

        self.env.process(proc())

    def act(self, type_: str, **fields: Any) -> None:
        """A pump act with the documentation waiting for it, in the order it was listed."""
        before, after = self.before, self.after
        self.before, self.after = [], []
        for fn in before:
            fn()
        self.emit(type_, **fields)
        for fn in after:
            fn()

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

    # -- deviations: which is due, and when it became real ------------------------
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
                limit = min(limit, max(h for h in ALLOWED_HOURS if h * H <= max(to_step, DAY)))
        return limit

    def hospital_days(self, cycle: int) -> float:
        if cycle in self.c.inpatient_days:
            return self.c.inpatient_days[cycle]
        if not self.c.home_infusion:
            return self.cycle_min / DAY
        return self.proto.hospital_days(self.p.indication, cycle)

    def hospital_left(self, at: int) -> bool:
        days = self.hospital_days(self.cycle)
        return at >= self.cycle_start + days * DAY
