"""Monte Carlo populations: many patients, full courses, deviations injected at a rate.

Each patient is drawn from one ``random.Random(seed)`` (profile, course, its
behaviours, and whether and where a deviation goes), then simulated with its
own generator, so ``--seed`` alone fixes the whole population and its stream.
Deviations are placed where they are meaningful (an unsupervised restart at
home, an early discharge inside the hospital window), so a miss is the
engine's, not the dice's (``placement``). Every number that decides where
(cycle maxima, hospital windows, the weight band, the preservative floor) is
the pack's.

Patients also carry the damaged-but-correct behaviours real feeds show (hot
swaps, lost stops and orders, same-second documentation, weights mid-course,
unflagged preserved bags, reaction holds, interruptions, continued therapy):
none of them is a deviation, so a clean population owes no finding at all.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from pumpguard.simulations.generator import Generated, PatientPlan, Population
from pumpguard.simulations.placement import random_deviation
from pumpguard.simulations.protocol import Protocol, load_protocol
from pumpguard.simulations.scenario import (
    Behaviours,
    Course,
    Deviation,
    Interruption,
    Patient,
    Reaction,
    Staff,
    check_plan,
)

__all__ = [
    "BEHAVIOURS",
    "CLASSIC_KINDS",
    "KINDS",
    "ORIGIN",
    "generate_population",
    "plan_population",
    "random_deviation",
]

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
    "hot_swap_wrong_rate",
    "hot_swap_overdue",
    "weight_crosses_band",
    "preservative_bag_small_patient",
    "reaction_discontinuation",
    "restart_after_discontinuation",
    "lost_cycle_order",
)

CLASSIC_KINDS = KINDS[:17]
"""The kinds the drills knew before issue 8 (today's engine is held to these)."""

BEHAVIOURS = frozenset(
    {
        "hot_swap",
        "lost_stop",
        "same_second",
        "lost_orders",
        "mislabelled_phase",
        "weights_mid_course",
        "unflagged_preservative",
        "reaction_holds",
        "interruptions",
        "derived_bsa",
        "continued_therapy",
        "infants",
        "premed_as_required",
    }
)
"""The damaged-but-correct situations a population mixes in; a subset selects some.

The dice are thrown for every one whatever the subset, so a patient's profile,
course and deviation stay the same when a behaviour is switched off: the
difference in findings is that behaviour's alone.
"""

_CATEGORIES = ("crs", "neurotoxicity", "seizure", "infection", "tumor_lysis", "other")


def _profile(rng: random.Random, index: int, proto: Protocol, mix: frozenset[str]) -> Patient:
    indication = rng.choices(
        ["relapsed_refractory", "mrd_positive", "consolidation"], weights=[6, 3, 1]
    )[0]
    r = rng.random()
    # every draw is made whatever the branch, so switching a behaviour off moves no dice
    infant = (rng.uniform(55, 70), round(rng.uniform(5.5, 9.5), 1))
    kid_age = rng.randint(2, 16)  # a child stays under 18 through the longest course
    kid = (
        85 + 6.5 * kid_age + rng.uniform(-8, 8),
        round(max(11.0, 2.2 * kid_age + 8 + rng.uniform(-3, 6)), 1),
    )
    adult_age = rng.randint(18, 84)
    adult = (rng.uniform(150, 195), round(rng.uniform(48, 115), 1))
    if r < 0.03 and proto.num("preservative_min_weight_kg") < 10 and "infants" in mix:
        # an infant: the 2024 label lets preserved bags down to a few kilograms
        age, (height, weight) = 0, infant
    elif r < 0.15:
        age, (height, weight) = kid_age, kid
    else:
        age, (height, weight) = adult_age, adult
    bsa: float | None = round(math.sqrt(height * weight / 3600), 2)
    height_cm: float | None = None
    derived = rng.random() < 0.3 and "derived_bsa" in mix
    if proto.child(age) and derived:
        # height and weight only: the engine derives the BSA (Mosteller) and says so
        bsa, height_cm = None, round(height, 1)
    elif not proto.child(age) and derived:
        bsa = None
    return Patient(
        id=f"MC-{index:05d}",
        weight_kg=weight,
        bsa_m2=bsa,
        height_cm=height_cm,
        age_years=age,
        indication=indication,
        edition="label-2024" if proto.edition == "label-2024" else "seed",
    )


def _course(rng: random.Random, p: Patient, proto: Protocol, mix: frozenset[str]) -> Course:
    limit = proto.max_cycles(p.indication)
    cycles = min(5 if p.indication == "relapsed_refractory" else 4, limit)
    continued = rng.random() < 0.2 and "continued_therapy" in mix
    if p.indication == "relapsed_refractory" and limit > 5 and continued:
        cycles = rng.randint(6, limit)  # continued therapy, 56 days off after each
    floor = proto.num("preservative_min_weight_kg")
    homes = [48, 72, 96, 168] if p.weight_kg >= floor else [24, 48]
    return Course(
        cycles=cycles,
        home_bag_hours=rng.choice(homes),
        home_infusion=rng.random() < 0.9,
        short_stops_per_cycle=rng.choice([0.0, 0.5, 1.0, 2.0]),
    )


def _behaviours(
    rng: random.Random, p: Patient, c: Course, clean: bool, mix: frozenset[str]
) -> Behaviours:
    """The damaged-but-correct mix; clinical events (holds, long stops) on clean patients."""
    reactions: tuple[Reaction, ...] = ()
    interruptions: tuple[Interruption, ...] = ()
    weights = 0
    lost_orders = False
    if clean:
        reactions, interruptions = _clinical_events(rng, p, c)
        weights = rng.choice([0, 0, 0, 1, 2])
        lost_orders = rng.random() < 0.06
    b = Behaviours(
        hot_swap=rng.choice([0.0, 0.0, 0.1, 0.3]),
        lost_stop=rng.choice([0.0, 0.0, 0.05, 0.15]),
        same_second=rng.choice([0.0, 0.2, 0.5]),
        lost_orders=lost_orders,
        mislabelled_phase=rng.random() < 0.3,
        weights_per_cycle=weights,
        unflagged_preservative=rng.choice([0.0, 0.5, 1.0]),
        reactions=reactions,
        interruptions=interruptions,
    )
    return _switch_off(b, mix)


def _clinical_events(
    rng: random.Random, p: Patient, c: Course
) -> tuple[tuple[Reaction, ...], tuple[Interruption, ...]]:
    """A clean patient's reaction held by the book and interruption, each 30 % likely."""
    reactions: list[Reaction] = []
    interruptions: list[Interruption] = []
    if rng.random() < 0.3:
        cycle = rng.randint(1, c.cycles)
        first_rr = p.indication == "relapsed_refractory" and cycle == 1
        reactions.append(
            Reaction(
                category=rng.choice(_CATEGORIES),
                cycle=cycle,
                day=round(rng.uniform(11 if first_rr else 5, 20), 2),
                resolve_days=round(rng.uniform(0.3, 3.5), 2),
                restart_after_h=round(rng.uniform(2, 20), 1),
            )
        )
    if rng.random() < 0.3:
        cycle = rng.randint(1, c.cycles)
        kind = rng.random()
        if kind < 0.4:
            hours = rng.uniform(0.2, 3.2)
        elif kind < 0.85 or cycle == c.cycles:
            hours = rng.uniform(4.0, 164.0)
        else:
            hours = rng.uniform(172.0, 240.0)  # longer than 7 days: a new cycle
        # one in five right at the reinitiation threshold (4 h counts)
        if kind >= 0.4 and rng.random() < 0.2:
            hours = 4.0
        interruptions.append(
            Interruption(cycle=cycle, day=round(rng.uniform(10, 20), 2), hours=round(hours, 2))
        )
    return tuple(reactions), tuple(interruptions)


def _switch_off(b: Behaviours, mix: frozenset[str]) -> Behaviours:
    """The behaviours left out of ``mix`` set to none (their dice were thrown all the same)."""
    off: dict[str, object] = {}
    for name, field, none in (
        ("hot_swap", "hot_swap", 0.0),
        ("lost_stop", "lost_stop", 0.0),
        ("same_second", "same_second", 0.0),
        ("lost_orders", "lost_orders", False),
        ("mislabelled_phase", "mislabelled_phase", False),
        ("weights_mid_course", "weights_per_cycle", 0),
        ("unflagged_preservative", "unflagged_preservative", 0.0),
        ("reaction_holds", "reactions", ()),
        ("interruptions", "interruptions", ()),
    ):
        if name not in mix:
            off[field] = none
    return b.model_copy(update=off) if off else b


def plan_population(
    patients: int,
    error_rate: float,
    seed: int,
    protocol: Protocol,
    *,
    mix: frozenset[str] = BEHAVIOURS,
    kinds: tuple[str, ...] = KINDS,
) -> list[PatientPlan]:
    """``patients`` plans; each gets one deviation with probability ``error_rate``.

    ``mix`` names the damaged-but-correct behaviours to include (all by
    default; an empty set gives the population of the drills before issue 8).
    """
    unknown = mix - BEHAVIOURS
    if unknown:
        msg = f"unknown behaviours {sorted(unknown)}; known: {', '.join(sorted(BEHAVIOURS))}"
        raise ValueError(msg)
    rng = random.Random(seed)
    plans = []
    for i in range(patients):
        p = _profile(rng, i, protocol, mix)
        c = _course(rng, p, protocol, mix)
        devs: tuple[Deviation, ...] = ()
        if rng.random() < error_rate:
            for _ in range(5):  # some kinds do not fit some patients; draw again
                placed = random_deviation(rng.choice(kinds), rng, p, c, protocol)
                if placed is not None:
                    dev, p2, c2 = placed
                    try:
                        check_plan(p2, c2, Staff(), Behaviours(), (dev,), protocol)
                    except ValueError:
                        continue
                    devs, p, c = (dev,), p2, c2
                    break
        b = _behaviours(rng, p, c, not devs, mix)
        generous = rng.random() < 0.2 or "premed_as_required" not in mix
        staff = Staff(premedication="every_moment" if generous else "as_required")
        offset = rng.randint(0, 60 * 1440)
        plans.append(
            PatientPlan(p, c, staff, devs, offset_min=offset, scenario="montecarlo", behaviours=b)
        )
    return plans


def generate_population(
    patients: int,
    error_rate: float,
    seed: int,
    edition: str = "seed",
    *,
    protocol: Protocol | None = None,
    mix: frozenset[str] = BEHAVIOURS,
    kinds: tuple[str, ...] = KINDS,
) -> Generated:
    """The population's stream, every patient interleaved in time order."""
    if protocol is None:
        _, protocol = load_protocol(edition)
    pop = Population(ORIGIN, seed, protocol)
    for plan in plan_population(patients, error_rate, seed, protocol, mix=mix, kinds=kinds):
        pop.add(plan)
    return pop.run()
