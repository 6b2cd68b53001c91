"""The pump: it runs a bag until it empties, the nurse changes it, or someone stops it.

:class:`PumpSim` adds the pump to the ward: hanging a bag (with the
deviations decided at that moment: a wrong rate, an elastomeric pump, a
wrong dose, a bag left past its time), the pharmacy's next bag and a possible
hot swap, stops and resumes, a stop lost by the feed, and the waits other
processes use to act while the drug runs.
"""

from __future__ import annotations

from typing import Any, cast

import simpy
from pumpguard.simulations.course import BAG_RATES, BAG_VOLUMES
from pumpguard.simulations.records import DRUG, Bag, H, Injected, Proc, Result, Span, Stop
from pumpguard.simulations.ward import WardSim

__all__ = ["HANG_KINDS", "PumpSim"]

HANG_KINDS = ("bag_overdue", "rate_mismatch", "elastomeric_pump", "dose_error")
"""Deviations placed when a bag is hung (not swapped in)."""


class PumpSim(WardSim):
    """One patient's pump, on top of the ward."""

    def hang(self, bag: Bag, *, first: bool, hot: bool = False) -> Proc:
        """The pump runs one bag until it is empty, the nurse changes it, or a long stop."""
        if not first and not hot:
            yield self.env.timeout(self.rng.randint(1, 4))
        if self.lost_at is not None:
            # the engine never saw the stop: to it the drug ran on, so the cycle's total does
            self.inf_done += self.t - self.lost_at
            self.lost_at = None
        self.current = bag
        self.hang_min = self.t
        self.paused_in_bag = 0
        span = Span(min(bag.hours * H, self.cycle_min - self.inf_done), self.t + bag.hours * H)
        mismatch = None
        if hot:
            self.swapped_in(bag, span)
        else:
            mismatch = self.hung_fresh(bag, span)
        self.mark_forgotten(bag, span.remaining)
        self.running = True
        for ev in self.hang_listeners:
            if not ev.triggered:
                ev.succeed()
        self.hang_listeners = []
        if mismatch is not None:
            fix = round((mismatch.deviation.hours or 2) * H)
            self.later(fix, lambda: self.fix_rate(bag))
        late = self.late()
        self.change_due = span.change_due
        self.next_hang = span.change_due + late
        swap = self.prepare_next(span)
        return (yield from self.run_bag(bag, span.remaining, span.change_due, swap))

    def bag_infusion(self, until: int) -> int:
        """Minutes the hung bag infuses from its hang to ``until``, less its pauses so far."""
        return until - self.hang_min - self.paused_in_bag

    def overrun(self, inj: Injected, bag: Bag, span: Span, detail: str) -> None:
        """A bag left past its time by the deviation's hours (``detail`` formats them)."""
        extra = round((inj.deviation.hours or 3) * H)
        self.mark(inj, self.t + bag.hours * H, detail.format(extra / H))
        span.remaining = min(span.remaining + extra, self.cycle_min - self.inf_done)
        span.change_due += extra

    def swapped_in(self, bag: Bag, span: Span) -> None:
        """A hot-swapped bag: its rate (or a drill's wrong one) and a drill's overrun."""
        swap_rate = self.take("hot_swap_wrong_rate")
        if swap_rate is not None:
            self.mark(swap_rate, detail=f"hot swap to a {bag.hours} h bag left at {self.rate:g}")
            fix = round((swap_rate.deviation.hours or 2) * H)
            self.later(fix, lambda: self.fix_rate(bag))
        else:
            self.rate = BAG_RATES[bag.hours]
        overdue = self.overdue_next
        self.overdue_next = None
        if overdue is not None:
            self.overrun(overdue, bag, span, "swapped bag left {:g} h over")

    def hung_fresh(self, bag: Bag, span: Span) -> Injected | None:
        """A bag hung and started, with the deviations due now; returns a wrong rate's."""
        self.rate = BAG_RATES[bag.hours]
        self.choose_pump()
        dose = bag.dose
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
            self.overrun(overdue, bag, span, "bag left {:g} h past time")
        self.act(
            "pump.infusion_started",
            drug=DRUG,
            rate_ml_h=self.rate,
            dose_mcg_day=dose,
            bag_id=bag.bag_id,
            vtbi_ml=BAG_VOLUMES[bag.hours],
        )
        return mismatch

    def choose_pump(self) -> None:
        """The usual pump, or an elastomeric one where a drill puts the bag on it."""
        elasto = self.take("elastomeric_pump")
        if elasto is None and self.pump_id != self.base_pump:
            self.pump_id = self.base_pump
            self.register_pump(self.c.pump)
        if elasto is not None:
            self.pump_id = f"ELASTO-{self.pid}"
            self.register_pump("elastomeric")
            self.mark(elasto, detail="bag hung on an elastomeric pump")

    def prepare_next(self, span: Span) -> bool:
        """Order the next bag from the pharmacy (premedicating a step-up); True: hot swap."""
        predicted = self.inf_done + span.remaining
        change_due = span.change_due
        self.next_bag = None
        if predicted >= self.cycle_min:
            return False
        prefer_home = not self.hospitalized or self.hospital_left(change_due)
        step_before = self.dose_at(self.inf_done)

        def plan() -> tuple[int, float]:
            # at the pharmacy's moment: a pause on this bag since the hang ran its wall
            # time but not its infusion, so the cycle's infusion total is that much short
            ran = min(span.remaining, self.bag_infusion(self.next_hang))
            at = self.inf_done + max(0, ran)
            return self.bag_hours(at, prefer_home), self.dose_at(at)

        # pharmacy prepares the next bag a few hours before it is due
        self.next_bag = self.pharmacy(change_due - self.rng.randint(120, 240), plan)
        if self.dose_at(predicted) > step_before and self.premed_step():
            lead = self.lead()
            self.later(max(0, self.next_hang - lead - self.t), self.premed)
        forced = self.due_by("hot_swap_wrong_rate", change_due) or self.due_by(
            "hot_swap_overdue", change_due
        )
        roll = self.b.hot_swap and self.rng.random() < self.b.hot_swap
        if forced is None and not roll:
            return False
        # a hot swap: the nurse hangs the next bag a little before this one empties
        self.next_hang = max(self.t + 30, change_due - self.rng.randint(5, 30))
        return True

    def run_bag(self, bag: Bag, remaining: int, change_due: int, swap: bool) -> Proc:
        """Run the hung bag to its end: empty, changed (or swapped), or stopped."""
        infused = 0
        while remaining > 0:
            seg = min(remaining, self.next_hang - self.t)
            if seg <= 0:
                if swap and self.swap_ready(bag):
                    return Result("swap", infused)
                self.stop_or_lose("pump.infusion_stopped", bag, reason="user")
                self.running = False
                return Result("stopped", infused)
            t0 = self.t
            try:
                yield self.env.timeout(seg)
            except simpy.Interrupt as intr:
                ran = self.t - t0
                remaining -= ran
                infused += ran
                stop = cast(Stop, intr.cause)
                ended = self.stopped(stop, infused, change_due)
                if ended is not None:
                    return ended
                self.paused_in_bag += stop.pause_min
                yield from self.pause(stop)
                self.running = True
            else:
                ran = self.t - t0
                remaining -= ran
                infused += ran
        self.running = False
        self.emit("pump.alarm", alarm="end_of_infusion")
        self.stop_or_lose("pump.infusion_completed", bag, bag_id=bag.bag_id)
        return Result("completed", infused)

    def stopped(self, stop: Stop, infused: int, change_due: int) -> Result | None:
        """The pump stopped mid-bag; a Result when the bag ends here, None for a pause."""
        self.running = False
        if stop.alarm:
            self.emit("pump.alarm", alarm=stop.alarm)
        self.emit("pump.infusion_stopped", reason=stop.reason)
        if stop.final:
            return Result("final", infused, stop)
        if stop.end_cycle:
            return Result("cut", infused, stop)
        if stop.new_bag_needed or self.t + stop.pause_min >= change_due - 30:
            return Result("expired", infused, stop)
        return None

    def swap_ready(self, bag: Bag) -> bool:
        """A hot swap happens when the next bag is ready and runs like this one (or a drill
        asks for a wrong-rate or overdue swap)."""
        nxt = self.next_bag
        if nxt is None or not nxt.triggered:
            return False
        # a deviation made when a bag is hung needs a hang, not a swap
        if any(self.due_by(kind, self.t) for kind in HANG_KINDS):
            return False
        new = cast(Bag, nxt.value)
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

    def _now(self, value: Bag) -> Proc:
        yield self.env.timeout(0)
        return value

    def stop_or_lose(self, type_: str, bag: Bag, **fields: Any) -> None:
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
            and cast(Bag, nxt.value).hours == bag.hours
            and cast(Bag, nxt.value).dose == bag.dose
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

    def mark_forgotten(self, bag: Bag, remaining: int) -> None:
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

    def fix_rate(self, bag: Bag) -> None:
        if self.running and self.current is bag:
            self.rate = BAG_RATES[bag.hours]
            self.emit("pump.rate_changed", rate_ml_h=self.rate, dose_mcg_day=bag.dose)

    def pause(self, stop: Stop) -> Proc:
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

    def interrupt(self, stop: Stop) -> bool:
        """Stop the pump mid-bag; False when it is not running (nothing to stop)."""
        if not self.running or self.bag_proc is None or not self.bag_proc.is_alive:
            return False
        self.bag_proc.interrupt(stop)
        return True

    def restart_stop(self, reason: str, pause: int, **kw: Any) -> Stop:
        """A stop whose restart gets the care the pack asks for after ``pause`` minutes."""
        long = pause >= self.reinit_min
        return Stop(reason, pause, long and self.premed_restart(), long, **kw)
