"""Monte Carlo populations: many patients, full courses, deviations injected at a rate.

Each patient is drawn from one ``random.Random(seed)`` (profile, course, and
whether and where a deviation goes), then simulated with its own generator,
so ``--seed`` alone fixes the whole population and its stream. Deviations are
placed where they are meaningful (an unsupervised restart at home, an early
discharge inside the hospital window), so a miss is the engine's, not the dice's.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from pumpguard.simulations.generator import Generated, PatientPlan, Population
from pumpguard.simulations.scenario import Course, Deviation, Patient, Staff, max_cycles

__all__ = ["ORIGIN", "generate_population", "plan_population", "random_deviation"]

ORIGIN = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
"""Population day 0 (fixed, so a seed gives the same bytes on any day)."""

KINDS = (
    "flush_at_bag_change",
    "flush_at_completion",
    "bolus",
    "occlusion",
    "early_discharge",
    "unsupervised_cycle_start",
    "rate_mismatch",
    "dose_error",
    "bag_overdue",
    "caregiver_bag_change",
    "elastomeric_pump",
    "long_interruption",
    "grade4_restart",
    "restart_during_hold",
    "pump_unreachable",
    "short_treatment_free_interval",
    "beyond_max_cycles",
)


def _profile(rng: random.Random, index: int, edition: str) -> Patient:
    indication = rng.choices(
        ["relapsed_refractory", "mrd_positive", "consolidation"], weights=[6, 3, 1]
    )[0]
    if rng.random() < 0.12:
        age = rng.randint(2, 17)
        height = 85 + 6.5 * age + rng.uniform(-8, 8)
        weight = round(max(11.0, 2.2 * age + 8 + rng.uniform(-3, 6)), 1)
    else:
        age = rng.randint(18, 84)
        height = rng.uniform(150, 195)
        weight = round(rng.uniform(48, 115), 1)
    bsa = round(math.sqrt(height * weight / 3600), 2)
    return Patient(
        id=f"MC-{index:05d}",
        weight_kg=weight,
        bsa_m2=bsa,
        age_years=age,
        indication=indication,
        edition=edition,
    )


def _course(rng: random.Random, p: Patient) -> Course:
    cycles = 5 if p.indication == "relapsed_refractory" else 4
    cycles = min(cycles, max_cycles(p.edition, p.indication))
    floor = 22.0 if p.edition == "seed" else 5.4
    homes = [48, 96, 168] if p.weight_kg >= floor else [24, 48]
    return Course(
        cycles=cycles,
        home_bag_hours=rng.choice(homes),
        home_infusion=rng.random() < 0.9,
        short_stops_per_cycle=rng.choice([0.0, 0.5, 1.0, 2.0]),
    )


def _home_day(rng: random.Random, p: Patient, c: Course, cycle: int) -> float:
    """A calendar day when the patient is at home in ``cycle``."""
    rr = p.indication == "relapsed_refractory"
    hosp = {1: 9 if rr else 3, 2: 2}.get(cycle, 0) if c.home_infusion else 28
    return round(rng.uniform(hosp + 2, max(hosp + 2.5, 26 - 2 * c.home_bag_hours / 24)), 2)


def random_deviation(
    kind: str, rng: random.Random, p: Patient, c: Course
) -> tuple[Deviation, Patient, Course] | None:
    """A deviation of ``kind`` placed where it can happen (or None if this patient cannot)."""
    cycle = rng.randint(1, c.cycles)
    # kinds that act at a bag change need a full bag change after their day
    day = round(rng.uniform(2, max(2.5, 26 - 2 * c.home_bag_hours / 24)), 2)
    if kind in ("occlusion", "caregiver_bag_change", "restart_during_hold"):
        if not c.home_infusion:
            return None
        dev = Deviation(
            kind=kind,
            cycle=cycle,
            day=_home_day(rng, p, c, cycle),
            hours=round(rng.uniform(4.5, 9), 2) if kind != "caregiver_bag_change" else None,
            variant=rng.choice(["order", "reaction"]) if kind == "restart_during_hold" else None,
        )
        return dev, p, c
    if kind == "early_discharge":
        if not c.home_infusion:
            return None
        cycle = rng.randint(1, min(2, c.cycles))
        last = 9 if cycle == 1 and p.indication == "relapsed_refractory" else 2 if cycle == 2 else 3
        return Deviation(kind=kind, cycle=cycle, day=round(rng.uniform(1.2, last), 2)), p, c
    if kind == "unsupervised_cycle_start":
        if c.cycles < 3 or not c.home_infusion:
            return None
        return Deviation(kind=kind, cycle=rng.randint(3, c.cycles)), p, c
    if kind == "dose_error":
        if p.weight_kg < 45:
            variant = "child_as_adult"
        elif p.indication == "relapsed_refractory" and rng.random() < 0.5:
            variant, cycle = "no_step_up", 1
        else:
            variant = "mg_for_mcg"
        return Deviation(kind=kind, variant=variant, cycle=cycle, day=day), p, c
    if kind == "long_interruption":
        cycle = rng.randint(2, c.cycles) if c.cycles > 1 else 1
        d = round(rng.uniform(8, 12), 1)
        return Deviation(kind=kind, cycle=cycle, day=round(rng.uniform(10, 20), 2), days=d), p, c
    if kind == "grade4_restart":
        return Deviation(kind=kind, cycle=c.cycles, day=round(rng.uniform(10, 20), 2)), p, c
    if kind == "pump_unreachable":
        hours = round(rng.uniform(2.5, 6), 2)
        return Deviation(kind=kind, cycle=cycle, day=day, hours=hours), p, c
    if kind == "short_treatment_free_interval":
        if c.cycles < 2:
            return None
        days = round(rng.uniform(4, 12), 1)
        return Deviation(kind=kind, cycle=rng.randint(2, c.cycles), days=days), p, c
    if kind == "beyond_max_cycles":
        limit = max_cycles(p.edition, p.indication)
        c = c.model_copy(update={"cycles": limit + 1})
        return Deviation(kind=kind, cycle=limit + 1), p, c
    if kind == "bag_overdue":
        hours = round(rng.uniform(1.5, 6), 2)
        return Deviation(kind=kind, cycle=cycle, day=day, hours=hours), p, c
    if kind == "rate_mismatch":
        cycle = rng.randint(2, c.cycles) if c.cycles > 1 else 1
        return Deviation(kind=kind, cycle=cycle, day=day, hours=2), p, c
    return Deviation(kind=kind, cycle=cycle, day=day), p, c


def plan_population(
    patients: int, error_rate: float, seed: int, edition: str = "seed"
) -> list[PatientPlan]:
    """``patients`` plans; each gets one deviation with probability ``error_rate``."""
    rng = random.Random(seed)
    plans = []
    for i in range(patients):
        p = _profile(rng, i, edition)
        c = _course(rng, p)
        devs: tuple[Deviation, ...] = ()
        if rng.random() < error_rate:
            for _ in range(5):  # some kinds do not fit some patients; draw again
                placed = random_deviation(rng.choice(KINDS), rng, p, c)
                if placed is not None:
                    dev, p, c = placed
                    devs = (dev,)
                    break
        staff = Staff()
        offset = rng.randint(0, 60 * 1440)
        plans.append(PatientPlan(p, c, staff, devs, offset_min=offset, scenario="montecarlo"))
    return plans


def generate_population(
    patients: int, error_rate: float, seed: int, edition: str = "seed"
) -> Generated:
    """The population's stream, every patient interleaved in time order."""
    pop = Population(ORIGIN, seed, edition)
    for plan in plan_population(patients, error_rate, seed, edition):
        pop.add(plan)
    return pop.run()
