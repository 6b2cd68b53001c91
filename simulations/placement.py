"""Where a random deviation of each kind can happen, for the Monte Carlo populations.

Deviations are placed where they are meaningful (an unsupervised restart at
home, an early discharge inside the hospital window), so a miss is the
engine's, not the dice's. Each kind has its placer; every number that decides
where (cycle maxima, hospital windows, the weight band, the preservative
floor) is the pack's. The dice are thrown in a fixed order (the cycle and day
first, whatever the kind), so a seed places the same deviations every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from pumpguard.simulations.protocol import Protocol
from pumpguard.simulations.scenario import Course, Deviation, Patient

__all__ = ["home_day", "random_deviation"]

UNRESOLVED = (
    "neuro_unresolved",
    "infection_unresolved",
    "tumor_lysis_unresolved",
    "other_unresolved",
)

Placed = tuple[Deviation, Patient, Course] | None
"""A placed deviation with the patient and course it needs (None: this patient cannot)."""


@dataclass
class _Draw:
    """One placement's inputs: the kind, the dice, the patient, and the day drawn first."""

    kind: str
    rng: random.Random
    p: Patient
    c: Course
    proto: Protocol
    cycle: int
    day: float

    @property
    def rr(self) -> bool:
        return self.p.indication == "relapsed_refractory"

    def later_cycle(self) -> int:
        """Any cycle but the first, when there is more than one."""
        return self.rng.randint(2, self.c.cycles) if self.c.cycles > 1 else 1

    def home(self, cycle: int) -> float:
        return home_day(self.rng, self.p, self.c, cycle, self.proto)

    def placed(self, **fields: object) -> Placed:
        return Deviation.model_validate({"kind": self.kind, **fields}), self.p, self.c


def _hosp_days(p: Patient, c: Course, cycle: int, proto: Protocol) -> float:
    if not c.home_infusion:
        return proto.num("cycle_length_h") / 24
    return proto.hospital_days(p.indication, cycle)


def home_day(rng: random.Random, p: Patient, c: Course, cycle: int, proto: Protocol) -> float:
    """A calendar day when the patient is at home (and at the full dose) in ``cycle``."""
    hosp = _hosp_days(p, c, cycle, proto)
    if p.indication == "relapsed_refractory" and cycle == 1:
        hosp = max(hosp, (proto.num("step_up_infusion_h") + proto.num("step_up_late_h")) / 24)
    length = proto.num("cycle_length_h") / 24
    last = length - 2 - 2 * c.home_bag_hours / 24
    # a patient in hospital all cycle has no home day: any day well inside the cycle
    lo, hi = min(hosp + 2, length - 4), min(max(hosp + 2.5, last), length - 3)
    return round(rng.uniform(lo, hi), 2)


def random_deviation(
    kind: str, rng: random.Random, p: Patient, c: Course, proto: Protocol
) -> Placed:
    """A deviation of ``kind`` placed where it can happen (or None if this patient cannot)."""
    cycle = rng.randint(1, c.cycles)
    # kinds that act at a bag change need a full bag change after their day
    last = proto.num("cycle_length_h") / 24 - 2 - 2 * c.home_bag_hours / 24
    day = round(rng.uniform(2, max(2.5, last)), 2)
    draw = _Draw(kind, rng, p, c, proto, cycle, day)
    placer = _PLACERS.get(kind)
    if placer is None:
        return draw.placed(cycle=cycle, day=day)
    return placer(draw)


def _home_restart(d: _Draw) -> Placed:
    """Occlusion, caregiver bag change, restart during a hold: at home, past the threshold."""
    if not d.c.home_infusion:
        return None
    reinit = d.proto.num("reinit_threshold_h")
    hours = round(d.rng.uniform(reinit + 0.5, reinit + 5), 2)
    # where R-PREMED asks nothing at this restart the ward gives it anyway (never a
    # finding), so the occlusion owes what is due and no reading of R-PREMED decides it
    unasked = not d.proto.premed_at_restart(d.p.age_years, d.p.indication, d.cycle)
    return d.placed(
        cycle=d.cycle,
        day=d.home(d.cycle),
        hours=hours if d.kind != "caregiver_bag_change" else None,
        variant=d.rng.choice(["order", "reaction"]) if d.kind == "restart_during_hold" else None,
        premedicated=d.kind == "occlusion" and unasked,
    )


def _early_discharge(d: _Draw) -> Placed:
    if not d.c.home_infusion:
        return None
    cycle = d.rng.randint(1, min(2, d.c.cycles))
    last = d.proto.hospital_days(d.p.indication, cycle)
    return d.placed(cycle=cycle, day=round(d.rng.uniform(1.2, last), 2))


def _unsupervised_start(d: _Draw) -> Placed:
    if d.c.cycles < 3 or not d.c.home_infusion:
        return None
    return d.placed(cycle=d.rng.randint(3, d.c.cycles))


def _dose_error(d: _Draw) -> Placed:
    cycle = d.cycle
    if d.p.weight_kg < d.proto.num("weight_band_kg"):
        variant = "child_as_adult"
    elif d.rr and d.rng.random() < 0.6:
        variant, cycle = d.rng.choice(["no_step_up", "step_up_forgotten"]), 1
    else:
        variant = "mg_for_mcg"
    return d.placed(variant=variant, cycle=cycle, day=d.day)


def _long_interruption(d: _Draw) -> Placed:
    cycle = d.later_cycle()
    limit_days = d.proto.num("interruption_max_h") / 24
    days = round(d.rng.uniform(limit_days + 1, limit_days + 5), 1)
    return d.placed(cycle=cycle, day=round(d.rng.uniform(10, 20), 2), days=days)


def _grade4(d: _Draw) -> Placed:
    return d.placed(cycle=d.c.cycles, day=round(d.rng.uniform(10, 20), 2))


def _unreachable(d: _Draw) -> Placed:
    warn = d.proto.num("visibility_warn_h")
    hours = round(d.rng.uniform(warn + 0.5, warn + 4), 2)
    return d.placed(cycle=d.cycle, day=d.day, hours=hours)


def _short_interval(d: _Draw) -> Placed:
    if d.c.cycles < 2:
        return None
    cycle = d.rng.randint(2, d.c.cycles)
    minimum = d.proto.treatment_free_h(d.p.indication, cycle - 1) / 24
    days = round(d.rng.uniform(minimum * 0.3, minimum - 2), 1)
    return d.placed(cycle=cycle, days=days)


def _beyond_max(d: _Draw) -> Placed:
    limit = d.proto.max_cycles(d.p.indication)
    if limit >= 9:
        return None  # nine cycles and continued-therapy gaps: too long a course to draw
    d.c = d.c.model_copy(update={"cycles": limit + 1})
    return d.placed(cycle=limit + 1)


def _lost_order(d: _Draw) -> Placed:
    if d.c.cycles < 2:
        return None
    return d.placed(cycle=d.c.cycles)


def _bag_overdue(d: _Draw) -> Placed:
    grace = d.proto.num("bag_grace_h")
    hours = round(d.rng.uniform(grace + 0.5, grace + 5), 2)
    return d.placed(cycle=d.cycle, day=d.day, hours=hours)


def _rate_mismatch(d: _Draw) -> Placed:
    return d.placed(cycle=d.later_cycle(), day=d.day, hours=2)


def _hot_swap(d: _Draw) -> Placed:
    if not d.c.home_infusion:
        return None
    cycle = d.later_cycle()
    grace = d.proto.num("bag_grace_h")
    wrong = d.kind == "hot_swap_wrong_rate"
    hours = 2.0 if wrong else round(d.rng.uniform(grace + 0.5, 5), 2)
    return d.placed(cycle=cycle, day=d.home(cycle), hours=hours)


def _weight_cross(d: _Draw) -> Placed:
    if d.proto.child(d.p.age_years) or not d.c.home_infusion:
        return None
    band = d.proto.num("weight_band_kg")
    height = round(d.rng.uniform(150, 165), 1)
    weight = round(band + d.rng.uniform(0.5, 4), 1)
    d.p = d.p.model_copy(update={"weight_kg": weight, "height_cm": height})
    d.p = d.p.model_copy(update={"bsa_m2": None})
    cycle = d.later_cycle()
    return d.placed(cycle=cycle, day=d.home(cycle))


def _small_patient(d: _Draw) -> Placed:
    """A preserved bag for a patient under the floor: a child small enough for it."""
    floor = d.proto.num("preservative_min_weight_kg")
    if not d.c.home_infusion or floor < 1.5:
        return None
    weight = round(d.rng.uniform(max(1.0, floor * 0.5), floor - 0.5), 1)
    # at most 16: a child stays a child (under 18) through the longest course
    age = 0 if weight < 10 else max(1, min(16, round((weight - 8) / 2.2)))
    height = 55 + weight * 2.5 if weight < 10 else 85 + 6.5 * age
    bsa = round(math.sqrt(height * weight / 3600), 2)
    d.p = d.p.model_copy(
        update={"weight_kg": weight, "age_years": age, "bsa_m2": bsa, "height_cm": None}
    )
    d.c = d.c.model_copy(update={"home_bag_hours": 48, "inpatient_bag_hours": 24})
    cycle = d.rng.randint(2, d.c.cycles) if d.c.cycles > 1 and d.rr else d.cycle
    variant = d.rng.choice(["flagged", "unflagged"])
    return d.placed(cycle=cycle, day=d.home(cycle), variant=variant)


def _discontinuation(d: _Draw) -> Placed:
    """A grade 3 reaction that ends treatment: at the start dose, or one left unresolved."""
    if d.rr and d.rng.random() < 0.4:
        proto = d.proto
        step_days = (proto.num("step_up_infusion_h") - proto.num("step_up_early_h")) / 24
        at = round(d.rng.uniform(1.5, step_days - 1), 2)
        return d.placed(cycle=1, day=at, variant="neuro_at_start_dose")
    variant = d.rng.choice(UNRESOLVED)
    return d.placed(cycle=d.cycle, day=d.home(d.cycle), variant=variant)


_PLACERS: dict[str, Callable[[_Draw], Placed]] = {
    "occlusion": _home_restart,
    "caregiver_bag_change": _home_restart,
    "restart_during_hold": _home_restart,
    "early_discharge": _early_discharge,
    "unsupervised_cycle_start": _unsupervised_start,
    "dose_error": _dose_error,
    "long_interruption": _long_interruption,
    "grade4_restart": _grade4,
    "pump_unreachable": _unreachable,
    "short_treatment_free_interval": _short_interval,
    "beyond_max_cycles": _beyond_max,
    "lost_cycle_order": _lost_order,
    "bag_overdue": _bag_overdue,
    "rate_mismatch": _rate_mismatch,
    "hot_swap_wrong_rate": _hot_swap,
    "hot_swap_overdue": _hot_swap,
    "weight_crosses_band": _weight_cross,
    "preservative_bag_small_patient": _small_patient,
    "reaction_discontinuation": _discontinuation,
    "restart_after_discontinuation": _discontinuation,
}
"""Each kind's placer; a kind not listed goes at the cycle and day drawn first."""
