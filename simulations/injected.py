"""The drill's point deviations: processes started with their cycle, acting at their time.

Each one waits until its (cycle, day) with the drug running, does the wrong
thing (or the thing whose care goes wrong), and records its onset, which
scoring compares with the findings. Which function a deviation kind runs is
:data:`POINT_KINDS`; the deviations decided when a bag is hung or changed
live with the pump and the nurse instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pumpguard.simulations.protocol import mosteller
from pumpguard.simulations.pump import PumpSim
from pumpguard.simulations.records import DAY, H, Injected, Proc, Stop

__all__ = ["POINT_KINDS"]


def bolus(sim: PumpSim, inj: Injected) -> Proc:
    yield from sim.when_running(sim.at(inj.deviation))
    sim.mark(inj, detail="bolus through the drug's line")
    sim.emit("pump.bolus", volume_ml=2.0)


def occlusion(sim: PumpSim, inj: Injected) -> Proc:
    d = inj.deviation
    pause = round((d.hours or 5) * H)
    yield from sim.when_running(sim.at(d), room_min=pause + 2 * H)
    restart = sim.t + pause
    sim.mark(inj, restart, f"occlusion for {pause / H:g} h, restarted at home")
    sim.interrupt(Stop("occlusion", pause, d.premedicated, d.supervised, alarm="occlusion"))


def long_interruption(sim: PumpSim, inj: Injected) -> Proc:
    d = inj.deviation
    pause = round((d.days or 8) * DAY)
    yield from sim.when_running(sim.at(d))
    sim.mark(inj, sim.t + pause, f"restarted after {pause / DAY:g} days in the same cycle")
    sim.interrupt(sim.restart_stop("user", pause, new_bag_needed=True))


def grade4(sim: PumpSim, inj: Injected) -> Proc:
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


def hold(sim: PumpSim, inj: Injected) -> Proc:
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


def unreachable(sim: PumpSim, inj: Injected) -> Proc:
    d = inj.deviation
    span = round((d.hours or 3) * H)
    yield from sim.when_running(sim.at(d), room_min=span + 2 * H)
    sim.mark(inj, detail=f"pump unreachable for {span / H:g} h")
    sim.emit("pump.connection_lost")
    sim.unreachable = True
    yield sim.env.timeout(span)
    sim.unreachable = False
    sim.emit("pump.connection_restored")


def weight_cross(sim: PumpSim, inj: Injected) -> Proc:
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


def discontinuation(sim: PumpSim, inj: Injected) -> Proc:
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
            Stop("user", pause, sim.premed_restart(), True, reset_dose=True, new_bag_needed=True)
        )
    else:
        sim.stop_course = True
        sim.interrupt(Stop("user", pause, False, False, final=True))


POINT_KINDS: dict[str, Callable[[PumpSim, Injected], Proc]] = {
    "bolus": bolus,
    "occlusion": occlusion,
    "long_interruption": long_interruption,
    "grade4_restart": grade4,
    "restart_during_hold": hold,
    "pump_unreachable": unreachable,
    "weight_crosses_band": weight_cross,
    "reaction_discontinuation": discontinuation,
    "restart_after_discontinuation": discontinuation,
}
