"""The drill scenario language: a patient, a course, how staff behave, what goes wrong.

A scenario is a small YAML document validated here, so a pharmacist writing a
drill learns about a typo (or a deviation that cannot happen where it was put)
before anything runs. Every deviation names the finding codes it should raise;
the catalogue of kinds, with their default codes, is :data:`DEVIATIONS`.

Times inside a course are given as (cycle, day): calendar day ``day`` of cycle
``cycle`` counts 24 h periods from that cycle's first start, as the spec does,
and may be fractional (``day: 12.5`` is noon-ish of day 12).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEVIATIONS",
    "BagHours",
    "Course",
    "Deviation",
    "Patient",
    "Scenario",
    "ScenarioError",
    "Staff",
    "catalogue_dir",
    "iter_scenario_files",
    "load_scenario",
    "max_cycles",
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
    "grade4_restart": ("SEVERE_REACTION", "RESTART_AFTER_DISCONTINUATION"),
    "restart_during_hold": ("RESTART_DURING_HOLD",),
    "pump_unreachable": ("DELIVERY_STATUS_UNKNOWN",),
    "short_treatment_free_interval": ("TREATMENT_FREE_INTERVAL_SHORT",),
    "beyond_max_cycles": ("MAX_CYCLES_EXCEEDED",),
}
"""Every deviation kind the generator can inject, with the codes it raises by default."""

_PRESERVATIVE_MIN_KG = {"seed": 22.0, "label-2024": 5.4}
_MAX_CYCLES = {
    ("seed", "relapsed_refractory"): 5,
    ("seed", "mrd_positive"): 5,
    ("seed", "consolidation"): 5,
    ("label-2024", "relapsed_refractory"): 9,
    ("label-2024", "mrd_positive"): 4,
    ("label-2024", "consolidation"): 4,
}


def max_cycles(edition: str, indication: str) -> int:
    """The course maximum the pack's edition allows (mirrors the pack's parameters)."""
    return _MAX_CYCLES[(edition, indication)]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not make sense; names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Patient(_Strict):
    """Who is treated: the numbers the dose, premedication and preservative rules read."""

    id: str = "DRILL-1"
    weight_kg: float = Field(70.0, gt=0, le=300)
    bsa_m2: float | None = Field(None, gt=0, le=4)
    age_years: int = Field(45, ge=0, le=120)
    indication: Indication = "relapsed_refractory"
    edition: Edition = "seed"

    @model_validator(mode="after")
    def _bsa_for_small(self) -> Patient:
        if self.weight_kg < 45 and self.bsa_m2 is None:
            raise ValueError("patients under 45 kg are dosed by body surface area: give bsa_m2")
        return self

    @property
    def child(self) -> bool:
        return self.age_years < 18

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
    treatment_free_days: float = Field(14, ge=0)
    pump: Literal["ambulatory", "volumetric", "syringe"] = "ambulatory"
    short_stops_per_cycle: float = Field(0.5, ge=0, le=5)


class Staff(_Strict):
    """How people behave on a normal day: a few minutes late, documentation a bit after."""

    bag_change_late_min: tuple[int, int] = (0, 15)
    documentation_delay_min: tuple[int, int] = (1, 20)
    premedication_lead_min: tuple[int, int] = (45, 90)

    @model_validator(mode="after")
    def _sane(self) -> Staff:
        for name in ("bag_change_late_min", "documentation_delay_min", "premedication_lead_min"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name}: give [low, high] with 0 <= low <= high")
        if self.bag_change_late_min[1] > 45:
            raise ValueError("bag_change_late_min above 45 min would run bags past their grace")
        if self.documentation_delay_min[1] > 55:
            raise ValueError("documentation_delay_min above 55 min leaves the supervision window")
        lead_lo, lead_hi = self.premedication_lead_min
        if lead_lo < 10 or lead_hi > 230:
            raise ValueError("premedication_lead_min must stay within 10 min and 230 min")
        return self


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

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes this deviation must raise (declared, or the kind's default)."""
        if self.expect is not None:
            return self.expect
        if self.kind == "occlusion":
            out = []
            if not self.supervised:
                out.append("REINITIATION_UNSUPERVISED")
            if not self.premedicated:
                out.append("PREMEDICATION_MISSING")
            return tuple(out)
        if self.kind == "restart_during_hold" and self.variant == "reaction":
            return ("SEVERE_REACTION", "RESTART_DURING_HOLD")
        return DEVIATIONS[self.kind]


_VARIANTS: dict[str, tuple[str, ...]] = {
    "flush_at_bag_change": ("documented", "pump"),
    "dose_error": ("mg_for_mcg", "no_step_up", "child_as_adult"),
    "restart_during_hold": ("order", "reaction"),
}


class Scenario(_Strict):
    """A drill: one patient's course with the deviations to inject."""

    name: str
    description: str = ""
    seed: int = 1
    start: AwareDatetime = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    patient: Patient = Patient()
    course: Course = Course()
    staff: Staff = Staff()
    deviations: tuple[Deviation, ...] = ()

    @model_validator(mode="after")
    def _fits(self) -> Scenario:
        p, c = self.patient, self.course
        floor = _PRESERVATIVE_MIN_KG[p.edition]
        if p.weight_kg < floor and max(c.inpatient_bag_hours, c.home_bag_hours) >= 72:
            raise ValueError(
                f"bags of 72 h or more hold a preservative, not for patients under {floor} kg"
            )
        limit = max_cycles(p.edition, p.indication)
        for d in self.deviations:
            if d.cycle > c.cycles:
                raise ValueError(f"{d.kind}: cycle {d.cycle} is beyond the course ({c.cycles})")
            if d.kind == "early_discharge" and d.cycle > 2:
                raise ValueError("early_discharge: only cycles 1 and 2 have hospital windows")
            if d.kind == "unsupervised_cycle_start" and d.cycle < 3:
                raise ValueError("unsupervised_cycle_start: cycles 1 and 2 start in hospital")
            if d.kind == "short_treatment_free_interval" and d.cycle < 2:
                raise ValueError("short_treatment_free_interval: cycle must be 2 or later")
            if d.kind == "beyond_max_cycles" and d.cycle <= limit:
                raise ValueError(f"beyond_max_cycles: cycle must exceed the maximum ({limit})")
            if d.variant == "child_as_adult" and p.weight_kg >= 45:
                raise ValueError("dose_error child_as_adult needs a patient under 45 kg")
        if c.cycles > limit and not any(d.kind == "beyond_max_cycles" for d in self.deviations):
            raise ValueError(
                f"{c.cycles} cycles exceed the {p.edition} maximum ({limit}) for "
                f"{p.indication}: declare a beyond_max_cycles deviation"
            )
        return self


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file; errors name the file."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    data.setdefault("name", path.stem)
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
