"""The drill scenario language: a patient, a course, how staff behave, what goes wrong.

A scenario is a small YAML document validated here, so a pharmacist writing a
drill learns about a typo (or a deviation that cannot happen where it was put)
before anything runs. Every deviation names the finding codes it should raise;
the catalogue of kinds, with their default codes, is :data:`DEVIATIONS`.

Times inside a course are given as (cycle, day): calendar day ``day`` of cycle
``cycle`` counts 24 h periods from that cycle's first start, as the spec does,
and may be fractional (``day: 12.5`` is noon-ish of day 12).

The language holds no protocol numbers: a scenario names its edition (and may
name a site file), and :meth:`Scenario.check` holds it against the
:class:`~pumpguard.simulations.protocol.Protocol` of that pack, so a site that
moves a threshold moves what the scenario may say and which codes it owes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pumpguard.engine.errors import PumpguardError
from pumpguard.simulations.protocol import Protocol, mosteller
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEVIATIONS",
    "BagHours",
    "Behaviours",
    "Course",
    "Deviation",
    "Interruption",
    "Patient",
    "Reaction",
    "Scenario",
    "ScenarioError",
    "Staff",
    "catalogue_dir",
    "iter_scenario_files",
    "load_scenario",
]

Indication = Literal["relapsed_refractory", "mrd_positive", "consolidation"]
Edition = Literal["seed", "label-2024"]
BagHours = Literal[24, 48, 72, 96, 168]

DEVIATIONS: dict[str, tuple[str, ...]] = {
    "flush_at_bag_change": ("LINE_FLUSH",),
    "flush_at_completion": ("LINE_FLUSH",),
    "bolus": ("LINE_FLUSH",),
    "occlusion": ("REINITIATION_UNSUPERVISED", "PREMEDICATION_MISSING"),
    "early_discharge": ("HOSPITALIZATION_REQUIRED",),
    "unsupervised_cycle_start": ("CYCLE_START_UNSUPERVISED",),
    "rate_mismatch": ("RATE_MISMATCH",),
    "dose_error": ("DOSE_MISMATCH",),
    "bag_overdue": ("BAG_OVERDUE",),
    "caregiver_bag_change": ("BAG_CHANGE_UNQUALIFIED",),
    "elastomeric_pump": ("UNSUITABLE_PUMP",),
    "long_interruption": ("NEW_CYCLE_REQUIRED",),
    "grade4_restart": (
        "SEVERE_REACTION",
        "DISCONTINUATION_REQUIRED",
        "RESTART_AFTER_DISCONTINUATION",
    ),
    "restart_during_hold": ("RESTART_DURING_HOLD",),
    "pump_unreachable": ("DELIVERY_STATUS_UNKNOWN",),
    "short_treatment_free_interval": ("TREATMENT_FREE_INTERVAL_SHORT",),
    "beyond_max_cycles": ("MAX_CYCLES_EXCEEDED",),
    "lost_cycle_order": ("NEW_CYCLE_REQUIRED", "CYCLE_TOO_LONG"),
    "hot_swap_wrong_rate": ("RATE_MISMATCH",),
    "hot_swap_overdue": ("BAG_OVERDUE",),
    "weight_crosses_band": ("DOSE_MISMATCH",),
    "preservative_bag_small_patient": ("PRESERVATIVE_BAG_UNDERWEIGHT",),
    "reaction_discontinuation": ("SEVERE_REACTION", "DISCONTINUATION_REQUIRED"),
    "restart_after_discontinuation": (
        "SEVERE_REACTION",
        "DISCONTINUATION_REQUIRED",
        "RESTART_AFTER_DISCONTINUATION",
    ),
}
"""Every deviation kind the generator can inject, with the codes it raises by default."""


class ScenarioError(PumpguardError):
    """A scenario file that cannot be read or does not make sense; names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Patient(_Strict):
    """Who is treated: the numbers the dose, premedication and preservative rules read."""

    id: str = "DRILL-1"
    weight_kg: float = Field(70.0, gt=0, le=300)
    bsa_m2: float | None = Field(None, gt=0, le=4)
    height_cm: float | None = Field(None, gt=30, le=250)
    age_years: int = Field(45, ge=0, le=120)
    indication: Indication = "relapsed_refractory"
    edition: Edition = "seed"

    def bsa(self) -> float | None:
        """The recorded BSA, else Mosteller from height and weight (as the spec derives it)."""
        if self.bsa_m2 is not None:
            return self.bsa_m2
        if self.height_cm is not None:
            return mosteller(self.height_cm, self.weight_kg)
        return None

    def birth_date(self, start: datetime) -> date:
        """A birth date that makes the patient ``age_years`` old throughout a long course."""
        return date(start.year - self.age_years, start.month, 1) - timedelta(days=60)


class Course(_Strict):
    """The course as ordered: cycles, bags, days in hospital, home infusion."""

    cycles: int = Field(2, ge=1, le=12)
    inpatient_bag_hours: BagHours = 24
    home_bag_hours: BagHours = 48
    home_infusion: bool = True
    inpatient_days: dict[int, float] = Field(default_factory=dict)
    treatment_free_days: float | None = Field(None, ge=0)
    pump: Literal["ambulatory", "volumetric", "syringe"] = "ambulatory"
    short_stops_per_cycle: float = Field(0.5, ge=0, le=5)


class Staff(_Strict):
    """How people behave on a normal day: a few minutes late, documentation a bit after."""

    bag_change_late_min: tuple[int, int] = (0, 15)
    documentation_delay_min: tuple[int, int] = (1, 20)
    premedication_lead_min: tuple[int, int] = (45, 90)
    premedication: Literal["as_required", "every_moment"] = "as_required"
    """``as_required`` gives it where R-PREMED asks; ``every_moment`` also at a child's later
    cycles and at MRD-positive and consolidation restarts (more is never a finding)."""

    @model_validator(mode="after")
    def _sane(self) -> Staff:
        for name in ("bag_change_late_min", "documentation_delay_min", "premedication_lead_min"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}: give [low, high] with 0 <= low <= high")
        return self

    def check(self, protocol: Protocol) -> None:
        """Normal behaviour can stay inside the pack's windows (the generator clips the
        high end of each span to them; a span that starts outside would be a deviation)."""
        for name, param, margin in (
            ("bag_change_late_min", "bag_grace_h", 15),
            ("documentation_delay_min", "supervision_window_h", 5),
            ("premedication_lead_min", "premedication_window_h", 10),
        ):
            limit = protocol.minutes(param) - margin
            low = getattr(self, name)[0]
            if low > limit:
                raise ValueError(f"{name} starts at {low} min, beyond {limit} min ({param})")


class Reaction(_Strict):
    """A grade 3 reaction handled by the book: stop, hold, close, restart low, step up."""

    category: Literal["crs", "neurotoxicity", "seizure", "infection", "tumor_lysis", "other"]
    cycle: int = Field(1, ge=1)
    day: float = Field(12.0, ge=1)
    resolve_days: float = Field(1.0, gt=0, le=5)
    restart_after_h: float = Field(6.0, ge=1, le=24)


class Interruption(_Strict):
    """A clean stop of ``hours``: within a cycle up to its limit, longer starts a new cycle."""

    cycle: int = Field(1, ge=1)
    day: float = Field(12.0, ge=1)
    hours: float = Field(gt=0, le=240)


class Behaviours(_Strict):
    """Damaged but clinically correct situations: what real feeds and wards produce.

    Shares are per occasion (a bag change, a start's documentation); none of
    them is a deviation, so a course with them owes no finding.
    """

    hot_swap: float = Field(0.0, ge=0, le=1)
    lost_stop: float = Field(0.0, ge=0, le=1)
    same_second: float = Field(0.0, ge=0, le=1)
    lost_orders: bool = False
    mislabelled_phase: bool = False
    weights_per_cycle: int = Field(0, ge=0, le=4)
    unflagged_preservative: float = Field(0.0, ge=0, le=1)
    reactions: tuple[Reaction, ...] = ()
    interruptions: tuple[Interruption, ...] = ()


class Deviation(_Strict):
    """One injected departure: what, where in the course, and how."""

    kind: str
    cycle: int = Field(1, ge=1)
    day: float = Field(1.0, ge=1)
    hours: float | None = Field(None, ge=0)
    days: float | None = Field(None, ge=0)
    variant: str | None = None
    supervised: bool = False
    premedicated: bool = False
    expect: tuple[str, ...] | None = None
    allow: tuple[str, ...] = ()
    note: str = ""

    @model_validator(mode="after")
    def _known(self) -> Deviation:
        if self.kind not in DEVIATIONS:
            known = ", ".join(sorted(DEVIATIONS))
            raise ValueError(f"unknown deviation kind {self.kind!r}; known: {known}")
        variants = _VARIANTS.get(self.kind)
        if self.variant is not None and (variants is None or self.variant not in variants):
            raise ValueError(f"{self.kind}: variant must be one of {variants or '(none)'}")
        return self

    def owed(self, patient: Patient, protocol: Protocol) -> tuple[str, ...]:
        """The codes this deviation must raise (declared, or the kind's default for the pack)."""
        if self.expect is not None:
            return self.expect
        if self.kind == "occlusion":
            out = []
            if not self.supervised:
                out.append("REINITIATION_UNSUPERVISED")
            premed = protocol.premed_at_restart(patient.age_years, patient.indication, self.cycle)
            if not self.premedicated and premed:
                out.append("PREMEDICATION_MISSING")
            return tuple(out)
        if self.kind == "restart_during_hold" and self.variant == "reaction":
            return ("SEVERE_REACTION", "RESTART_DURING_HOLD")
        if self.kind == "restart_during_hold":
            return ("RESTART_DURING_HOLD",)
        return DEVIATIONS[self.kind]


_DISCONTINUATION_VARIANTS = (
    "neuro_at_start_dose",
    "neuro_unresolved",
    "infection_unresolved",
    "tumor_lysis_unresolved",
    "other_unresolved",
)
_VARIANTS: dict[str, tuple[str, ...]] = {
    "flush_at_bag_change": ("documented", "pump"),
    "dose_error": ("mg_for_mcg", "no_step_up", "child_as_adult", "step_up_forgotten"),
    "restart_during_hold": ("order", "reaction"),
    "preservative_bag_small_patient": ("flagged", "unflagged"),
    "reaction_discontinuation": _DISCONTINUATION_VARIANTS,
    "restart_after_discontinuation": _DISCONTINUATION_VARIANTS,
}


class Scenario(_Strict):
    """A drill: one patient's course with the deviations to inject.

    ``site_file`` (relative to the scenario's folder) is a pack site file; with
    the patient's edition it selects the parameters the drill follows.
    """

    name: str
    description: str = ""
    seed: int = 1
    start: AwareDatetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    site_file: Path | None = None
    patient: Patient = Patient()
    course: Course = Course()
    staff: Staff = Staff()
    behaviours: Behaviours = Behaviours()
    deviations: tuple[Deviation, ...] = ()

    def check(self, protocol: Protocol) -> None:
        """Refuse what cannot happen under this pack; ``ValueError`` says why."""
        check_plan(
            self.patient, self.course, self.staff, self.behaviours, self.deviations, protocol
        )


def check_plan(
    p: Patient,
    c: Course,
    staff: Staff,
    behaviours: Behaviours,
    deviations: tuple[Deviation, ...],
    protocol: Protocol,
) -> None:
    """The protocol-dependent checks of a scenario (also run on every generated patient)."""
    staff.check(protocol)
    _check_patient(p, c, protocol)
    for d in deviations:
        _check_placement(d, p, c, protocol)
        _check_thresholds(d, p, protocol)
    _check_behaviours(behaviours, c, protocol)
    limit = protocol.max_cycles(p.indication)
    if c.cycles > limit and not any(d.kind == "beyond_max_cycles" for d in deviations):
        raise ValueError(
            f"{c.cycles} cycles exceed the {protocol.edition} maximum ({limit}) for "
            f"{p.indication}: declare a beyond_max_cycles deviation"
        )


def _check_patient(p: Patient, c: Course, protocol: Protocol) -> None:
    band = protocol.num("weight_band_kg")
    if p.weight_kg < band and p.bsa() is None:
        raise ValueError(
            f"patients under {band:g} kg are dosed by body surface area: give bsa_m2 or height_cm"
        )
    floor = protocol.num("preservative_min_weight_kg")
    if p.weight_kg < floor and max(c.inpatient_bag_hours, c.home_bag_hours) >= 72:
        raise ValueError(
            f"bags of 72 h or more hold a preservative, not for patients under {floor:g} kg"
        )


def _check_placement(d: Deviation, p: Patient, c: Course, protocol: Protocol) -> None:
    """A deviation placed where it can happen: its cycle, its patient, its course."""
    band = protocol.num("weight_band_kg")
    limit = protocol.max_cycles(p.indication)
    if d.cycle > c.cycles:
        raise ValueError(f"{d.kind}: cycle {d.cycle} is beyond the course ({c.cycles})")
    if d.kind == "early_discharge" and protocol.hospital_days(p.indication, d.cycle) <= 0:
        raise ValueError(f"early_discharge: cycle {d.cycle} has no hospital window")
    if d.kind == "unsupervised_cycle_start" and d.cycle < 3:
        raise ValueError("unsupervised_cycle_start: cycles 1 and 2 start in hospital")
    if d.kind == "short_treatment_free_interval":
        if d.cycle < 2:
            raise ValueError("short_treatment_free_interval: cycle must be 2 or later")
        if (d.days or 7) * 24 >= protocol.treatment_free_h(p.indication, d.cycle - 1):
            raise ValueError("short_treatment_free_interval: days must be under the minimum")
    if d.kind == "beyond_max_cycles" and d.cycle <= limit:
        raise ValueError(f"beyond_max_cycles: cycle must exceed the maximum ({limit})")
    if d.variant == "child_as_adult" and p.weight_kg >= band:
        raise ValueError(f"dose_error child_as_adult needs a patient under {band:g} kg")
    if d.kind == "lost_cycle_order" and (d.cycle < 2 or d.cycle != c.cycles):
        raise ValueError("lost_cycle_order: the order of the course's last cycle (2 or later)")
    floor = protocol.num("preservative_min_weight_kg")
    if d.kind == "preservative_bag_small_patient" and p.weight_kg >= floor:
        raise ValueError(f"preservative_bag_small_patient: needs a patient under {floor:g} kg")
    if d.variant == "neuro_at_start_dose":
        h = protocol.num
        step_days = (h("step_up_infusion_h") - h("step_up_early_h")) / 24
        if p.indication != "relapsed_refractory" or d.cycle != 1 or d.day >= step_days:
            raise ValueError(f"{d.kind} neuro_at_start_dose: R/R cycle 1 before day {step_days:g}")


def _check_thresholds(d: Deviation, p: Patient, protocol: Protocol) -> None:
    """A deviation that crosses the pack's threshold (short of it, it is none)."""
    h = protocol.num
    band = h("weight_band_kg")
    if d.kind == "occlusion" and (d.hours or 5) < h("reinit_threshold_h"):
        raise ValueError(
            f"occlusion: {d.hours or 5:g} h is under the {h('reinit_threshold_h'):g} h "
            "reinitiation threshold (not a deviation)"
        )
    if d.kind in ("bag_overdue", "hot_swap_overdue") and (d.hours or 3) <= h("bag_grace_h"):
        raise ValueError(f"{d.kind}: hours must exceed the {h('bag_grace_h'):g} h grace")
    if d.kind == "pump_unreachable" and (d.hours or 3) <= h("visibility_warn_h"):
        raise ValueError("pump_unreachable: hours must exceed the visibility warning")
    if d.kind == "long_interruption" and (d.days or 8) * 24 <= h("interruption_max_h"):
        raise ValueError("long_interruption: days must exceed the interruption limit")
    if d.kind == "weight_crosses_band" and (abs(p.weight_kg - band) > 5 or p.bsa() is None):
        raise ValueError(
            f"weight_crosses_band: weigh within 5 kg of {band:g} kg, with a BSA or height"
        )


def _check_behaviours(behaviours: Behaviours, c: Course, protocol: Protocol) -> None:
    """Clean behaviours inside the course, kept clear of the limits they would cross."""
    h = protocol.num
    for r in behaviours.reactions:
        if r.cycle > c.cycles:
            raise ValueError(f"reaction in cycle {r.cycle} is beyond the course ({c.cycles})")
    max_h = h("interruption_max_h")
    for i in behaviours.interruptions:
        if i.cycle > c.cycles:
            raise ValueError(f"interruption in cycle {i.cycle} is beyond the course")
        if max_h - 2 <= i.hours <= max_h + 2:
            raise ValueError(f"interruption of {i.hours:g} h: keep 2 h off the {max_h:g} h limit")
        if i.hours >= h("reinit_threshold_h") - 0.5 and i.hours < h("reinit_threshold_h"):
            raise ValueError("interruption just under the reinitiation threshold")


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file; errors name the file."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    data.setdefault("name", path.stem)
    if isinstance(data.get("site_file"), str):
        # a site file is named relative to the scenario, so a folder of drills travels whole
        data["site_file"] = (path.parent / data["site_file"]).resolve()
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def catalogue_dir() -> Path:
    """The bundled catalogue: one scenario per deviation kind, plus clean courses."""
    return Path(__file__).resolve().parent / "catalogue"


def iter_scenario_files(path: Path) -> Iterator[Path]:
    """A file, or the ``*.yaml`` files of a folder in name order."""
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    else:
        yield path
