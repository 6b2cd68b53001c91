"""What the drill generator is given and gives back, and the small records it passes around.

A :class:`PatientPlan` goes in, a :class:`Generated` stream with its
:class:`Injected` deviations comes out. The rest (a bag, a stop, the result
of a hung bag, the shared sink) is the generator's own vocabulary, kept here
so each of its modules (``patient``, ``ward``, ``pump``, ``nursing``,
``cycles``) can name it without importing the others.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import simpy
from pumpguard.simulations.scenario import Behaviours, Course, Deviation, Patient, Staff

__all__ = ["Generated", "Injected", "PatientPlan"]

H = 60
DAY = 1440
DRUG = "blinatumomab"
ALLOWED_HOURS = (24, 48, 72, 96, 168)

Proc = Generator[simpy.Event, Any, Any]
"""A SimPy process body."""
Doc = Callable[[], Any]
"""Documentation (or any act) written later or at a start's second."""

DEFAULT_ALLOW: dict[str, tuple[str, ...]] = {
    # a restart during a hold at the full dose is also a wrong dose (the start dose is due)
    "restart_during_hold": ("DOSE_MISMATCH",),
    "grade4_restart": ("DOSE_MISMATCH",),
    # with no step there is no step-up premedication; a rule keyed on day 8 may say so
    "dose_error": ("PREMEDICATION_MISSING",),
    # a restart after the 7- or 14-day window stays in its cycle: a new cycle was required
    "restart_after_discontinuation": ("DOSE_MISMATCH", "NEW_CYCLE_REQUIRED"),
    # to the engine the new cycle is a restart of the last: a child's restart premedication
    "lost_cycle_order": ("PREMEDICATION_MISSING",),
}


@dataclass
class Injected:
    """A deviation as injected: its patient, its onset in simulated time, the codes owed."""

    patient_id: str
    deviation: Deviation
    scenario: str = ""
    onset: datetime | None = None
    detail: str = ""
    owed: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.deviation.kind

    @property
    def codes(self) -> tuple[str, ...]:
        return self.owed

    @property
    def allow(self) -> tuple[str, ...]:
        return self.deviation.allow + DEFAULT_ALLOW.get(self.kind, ())


@dataclass
class PatientPlan:
    """One patient to simulate: who, which course, how staff behave, what goes wrong."""

    patient: Patient
    course: Course
    staff: Staff
    deviations: tuple[Deviation, ...] = ()
    offset_min: int = 0
    scenario: str = ""
    behaviours: Behaviours = field(default_factory=Behaviours)


@dataclass
class Generated:
    """A generated stream: canonical JSONL lines in time order, and what was injected."""

    lines: list[str]
    injected: list[Injected]
    patients: int
    seen: dict[str, int] = field(default_factory=dict)
    """How often each behaviour happened (``hot_swap``, ``lost_stop``...), for reports."""

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


@dataclass
class Bag:
    """A dispensed bag: its id, its duration (hours) and its dose (mcg/day)."""

    bag_id: str
    hours: int
    dose: float


@dataclass
class Stop:
    """Why the pump stops mid-bag, for how long, and what care the restart gets."""

    reason: str
    pause_min: int
    premed: bool
    supervise: bool
    alarm: str | None = None
    on_restart: Callable[[], None] | None = None
    reset_dose: bool = False
    new_bag_needed: bool = False
    end_cycle: bool = False
    final: bool = False


@dataclass
class Result:
    """How a hung bag ended, and the minutes it ran."""

    # completed | stopped (by the nurse) | expired (long stop) | swap (hot) | cut | final
    status: str
    infused: int
    stop: Stop | None = None


@dataclass
class Span:
    """A hung bag's minutes still to run and when its change falls due (both may grow)."""

    remaining: int
    change_due: int


@dataclass
class Sink:
    """Collects every patient's lines in emission order (SimPy emits in time order)."""

    origin: datetime
    lines: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
