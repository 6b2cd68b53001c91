"""The prescriber's course: register the patient, then order and start each cycle.

:class:`PatientSim` is the whole simulated patient: the nurse, pump and ward
below it, and on top the course (cycles, the gaps between them, the order and
admission of each) and the processes each cycle starts: the drill's point
deviations (``injected``) and the clean behaviours (``routine``).
"""

from __future__ import annotations

from typing import Any

import simpy
from pumpguard.simulations.injected import POINT_KINDS
from pumpguard.simulations.nursing import NurseSim
from pumpguard.simulations.records import DAY, H, Injected, Proc
from pumpguard.simulations.routine import interruption, reaction_hold, weights

__all__ = ["PatientSim"]


class PatientSim(NurseSim):
    """One simulated patient, from registration to the course's last stop."""

    def course(self) -> Proc:
        first = DAY + self.plan.offset_min
        yield self.env.timeout(first - 8 * H)
        self.register_patient(first)
        self.register_pump(self.c.pump)
        start = first
        last_end: int | None = None
        for cycle in range(1, self.c.cycles + 1):
            if self.stop_course:
                break
            if last_end is not None:
                start = self.next_start(cycle, last_end)
            self.cut_gap = None
            last_end = yield self.env.process(self.run_cycle(cycle, start))
        # the course is over: release anything still pending so scoring can say so
        for inj in self.pending:
            inj.detail = "not injected: the course ended before its time"
        self.pending.clear()

    def register_patient(self, first: int) -> None:
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

    def next_start(self, cycle: int, last_end: int) -> int:
        """When ``cycle`` starts: after the treatment-free interval (or a drill's short one)."""
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
        return start

    def phase(self, cycle: int) -> str:
        if self.p.indication != "relapsed_refractory":
            return "consolidation"
        if cycle <= 2:
            return "induction"
        if cycle < self.proto.num("continued_first_cycle"):
            return "consolidation"
        # the spec reads cycles 6 to 9 by their number, whatever the order's phase says
        return "consolidation" if self.b.mislabelled_phase else "continued"

    def run_cycle(self, cycle: int, start: int) -> Proc:
        """One cycle from order to last stop; returns the last stop's time."""
        env = self.env
        yield env.timeout(max(0, start - 6 * H - self.t))
        no_step, child = self.begin_cycle(cycle, start)
        first_dose = self.dose_at(0)
        self.order_cycle(cycle, start, first_dose)
        cycle_end = env.event()
        days, unsupervised = self.plan_stay(cycle, start, cycle_end)
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
            self.premed_or_same_second()
        bag = yield first
        yield env.timeout(max(0, start - self.t))
        if child is not None:
            self.mark(child, start, f"dosed {first_dose:g} mcg/day as an adult")
        if cycle >= 3 and not self.hospitalized:
            if unsupervised is None:
                self.supervise_at_act()
            else:
                self.mark(unsupervised, start, "cycle started at home with no professional")
        self.start_cycle_processes(cycle)
        end = yield env.process(self.infuse(bag))
        cycle_end.succeed()
        return end

    def begin_cycle(self, cycle: int, start: int) -> tuple[Injected | None, Injected | None]:
        """Reset the cycle's state and take its dose deviations; returns (no step, child)."""
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
        return no_step, child

    def order_cycle(self, cycle: int, start: int, first_dose: float) -> None:
        """The cycle's order: written, lost by the feed, or written at the start's second."""

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
            self.at_the_second(order)
        else:
            order()

    def plan_stay(
        self, cycle: int, start: int, cycle_end: simpy.Event
    ) -> tuple[float, Injected | None]:
        """Start the cycle's admission (or a drill's early discharge, or none at home).

        Returns the days in hospital and the drill's unsupervised start, if any.
        """
        days = self.hospital_days(cycle)
        early = self.cycle_dev("early_discharge", cycle)
        unsupervised = self.cycle_dev("unsupervised_cycle_start", cycle) if cycle >= 3 else None
        if early is not None:
            out = start + round((early.deviation.day - 1) * DAY)
            self.mark(early, out, f"discharged on day {early.deviation.day:g} of cycle {cycle}")
            days = max((out - start) / DAY, 1 / DAY)
            self.env.process(self.admissions(start, days, cycle_end, exact=True))
        elif unsupervised is None:
            self.env.process(self.admissions(start, days, cycle_end))
        return days, unsupervised

    def start_cycle_processes(self, cycle: int) -> None:
        """At the cycle's start: its point deviations and clean behaviours, as processes."""
        env = self.env
        for inj in list(self.pending):
            if inj.deviation.cycle == cycle and inj.kind in POINT_KINDS:
                self.pending.remove(inj)
                env.process(POINT_KINDS[inj.kind](self, inj))
        for r in self.b.reactions:
            if r.cycle == cycle:
                env.process(reaction_hold(self, r))
        for i in self.b.interruptions:
            if i.cycle == cycle:
                env.process(interruption(self, i))
        if self.b.weights_per_cycle:
            env.process(weights(self, cycle))
