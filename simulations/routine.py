"""Clean behaviours inside a cycle: what real wards do without any error.

Grade 3 reactions held and restarted by the book, interruptions from minutes
to days (longer than the limit: a new cycle), weights recorded mid-course
that keep the patient's band, and brief occlusions cleared well inside the
reinitiation threshold. Each is a process on the patient's pump.
"""

from __future__ import annotations

import math

from pumpguard.simulations.pump import PumpSim
from pumpguard.simulations.records import DAY, Doc, H, Proc, Stop
from pumpguard.simulations.scenario import Interruption, Reaction

__all__ = ["interruption", "reaction_hold", "short_stops", "weights"]


def reaction_hold(sim: PumpSim, r: Reaction) -> Proc:
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


def interruption(sim: PumpSim, i: Interruption) -> Proc:
    """A clean stop: resumed on the same bag, restarted on a new one, or a new cycle."""
    pause = round(i.hours * H)
    yield from sim.when_running(sim.at(i), room_min=min(pause, DAY) + 2 * H)
    if sim.cycle != i.cycle or sim.stop_course:
        return
    if pause > sim.max_pause:
        infused = sim.inf_done + sim.bag_infusion(sim.t)
        if sim.cycle_min - infused < DAY:
            return  # this near the cycle's 28 days the stop ends the cycle, not cuts it short
        sim.saw("interruption_new_cycle")
        sim.interrupt(sim.restart_stop("user", pause, end_cycle=True))
        return
    sim.saw("interruption")
    sim.interrupt(sim.restart_stop("user", pause))


def weights(sim: PumpSim, cycle: int) -> Proc:
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


def short_stops(sim: PumpSim, cycle: int) -> Proc:
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
        sim.interrupt(Stop("occlusion", pause, False, False, alarm="occlusion"))
