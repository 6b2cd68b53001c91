"""The nurse's bag loop: hang bags until the cycle's infusion is done, change them, restart.

:class:`NurseSim` adds the nurse to the pump: the loop over a cycle's bags
(normal changes, hot swaps, a new bag after a long stop), the bag change with
the deviations decided there (a flush, a caregiver), and its documentation.
"""

from __future__ import annotations

from pumpguard.simulations.pump import PumpSim
from pumpguard.simulations.records import Bag, Injected, Proc, Result, Stop

__all__ = ["NurseSim"]


class NurseSim(PumpSim):
    """One patient's nurse, on top of the pump."""

    def infuse(self, bag: Bag) -> Proc:
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
            if self.cycle_done(result):
                return (yield from self.finish_cycle())
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
                self.flush_if_due("line flushed at a bag completion")
            if self.next_bag is None:  # a stop on the last bag cut the cycle a little short
                return self.t
            bag = yield self.next_bag
            self.change(bag)

    def cycle_done(self, result: Result) -> bool:
        """The cycle's infusion is complete (or the course ends with this bag)."""
        done = self.inf_done >= self.cycle_min
        return done or (self.stop_course and result.status not in ("expired", "swap"))

    def finish_cycle(self) -> Proc:
        """After the cycle's last bag (a drill may flush the line); returns the end time."""
        end = self.t
        flush = self.take("flush_at_completion")
        if flush is not None:
            yield self.env.timeout(3)
            self.mark(flush, detail="line flushed after the cycle's last bag")
            self.emit("nursing.line_flush", volume_ml=10.0, aspirated_first=False)
        return end

    def flush_if_due(self, detail: str) -> None:
        flush = self.take("flush_at_completion")
        if flush is not None:
            self.mark(flush, detail=detail)
            self.emit("nursing.line_flush", volume_ml=10.0, aspirated_first=False)

    def documented_flush(self) -> Injected | None:
        """A drill's flush at this change, documented (named variant first, then plain)."""
        flush_doc = self.take("flush_at_bag_change", "documented")
        if flush_doc is not None:
            return flush_doc
        for inj in self.pending:
            d = inj.deviation
            if (
                d.kind == "flush_at_bag_change"
                and d.variant is None
                and d.cycle == self.cycle
                and self.t >= self.at(d)
            ):
                self.pending.remove(inj)
                return inj
        return None

    def change(self, bag: Bag, *, hot: bool = False) -> None:
        """The nurse's bag change: the pump learns the bag, the chart a little later."""
        prev = self.current.bag_id
        flush_doc = flush_pump = carer = None
        if not hot:
            flush_doc = self.documented_flush()
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

    def restart_with_new_bag(self, stop: Stop) -> Proc:
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
