"""The scenario stream builder and the registry the scenario modules fill.

``Scn`` writes one patient's canonical records at hours from T0 through the
shared builder (``pumpguard.engine.builder``); ``@scenario`` registers a case,
and ``build.py`` writes every registered case. Kept beside ``build.py``, which
(run as a script) imports it and the case modules from its own folder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pumpguard.engine.builder import EventBuilder

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MIN = 1 / 60


class Scn:
    """One patient's stream, written at hours from T0."""

    def __init__(self, weight: float = 70, indication: str = "relapsed_refractory", **reg: Any):
        self.events: list[dict[str, Any]] = []
        self.bag = 0
        # the committed files name pump_id last, after the event's own fields
        self._writer = EventBuilder("P-1", pump_id=None, id_prefix="s", id_width=4)
        self.add("patient.registered", -8, weight_kg=weight, indication=indication, **reg)
        self.add(
            "pump.registered",
            -8,
            pump_id="PUMP-1",
            device_kind="ambulatory",
            lockable=True,
            alarms=True,
        )

    def add(self, type_: str, at_h: float, **fields: Any) -> Scn:
        """One validated canonical record at ``at_h`` hours from T0 (engine.builder)."""
        if type_.startswith("pump.") and "pump_id" not in fields:
            fields["pump_id"] = "PUMP-1"
        self.events.append(self._writer.record(type_, T0 + timedelta(hours=at_h), **fields))
        return self

    def premed(self, at_h: float, mg: float = 20, drug: str = "dexamethasone") -> Scn:
        return self.add("medication.administered", at_h, drug=drug, dose_mg=mg, route="IV")

    def bag_start(
        self,
        at_h: float,
        dose: float,
        hours: int = 24,
        rate: float | None = None,
        label_rate: float | None = None,
        preservative: bool | None = None,
    ) -> str:
        self.bag += 1
        bag = f"B{self.bag}"
        label = {24: 10.0, 48: 5.0, 72: 3.3, 96: 2.5, 168: 0.6}[hours]
        self.add(
            "bag.dispensed",
            at_h - 2,
            bag_id=bag,
            drug="blinatumomab",
            dose_mcg_day=dose,
            duration_h=hours,
            rate_ml_h=label_rate or label,
            volume_ml=240,
            preservative=hours >= 72 if preservative is None else preservative,
        )
        self.add(
            "pump.infusion_started",
            at_h,
            drug="blinatumomab",
            rate_ml_h=rate if rate is not None else (label_rate or label),
            dose_mcg_day=dose,
            bag_id=bag,
        )
        return bag

    def complete(self, at_h: float, bag: str) -> Scn:
        return self.add("pump.infusion_completed", at_h, bag_id=bag)

    def cycle_start(
        self,
        n: int,
        at_h: float,
        dose: float,
        *,
        hospital: bool = True,
        phase: str = "induction",
        supervise: bool = False,
        premed: bool = True,
        hours: int = 24,
    ) -> str:
        self.add("cycle.ordered", at_h - 6, cycle=n, phase=phase, dose_mcg_day=dose)
        if hospital:
            self.add("encounter.admitted", at_h - 2, setting="inpatient")
        if premed:
            self.premed(at_h - 1)
        if supervise:
            self.add("nursing.supervision", at_h, actor_role="nurse")
        return self.bag_start(at_h, dose, hours=hours)

    def daily_bags(
        self,
        first: str,
        from_h: float,
        to_h: float,
        dose: float,
        step: dict[float, float] | None = None,
    ) -> str:
        """Bag changes every 24 h from ``from_h`` until ``to_h``; returns the last bag."""
        bag, t = first, from_h
        step = step or {}
        while t + 24 < to_h:
            t += 24
            new_dose = dose
            for at, value in step.items():
                if t >= at:
                    new_dose = value
            if new_dose != dose:
                self.premed(t - 1)
            dose = new_dose
            self.complete(t, bag)
            self.add(
                "nursing.bag_change",
                t + 2 * MIN,
                bag_id=f"B{self.bag + 1}",
                actor_role="nurse",
                line_flushed=False,
            )
            bag = self.bag_start(t + 5 * MIN, dose)
        return bag

    def whole_cycle(
        self,
        n: int,
        at_h: float,
        dose: float = 28,
        *,
        hospital_days: float = 0,
        phase: str = "consolidation",
        supervise: bool = False,
        step: dict[float, float] | None = None,
    ) -> float:
        """A clean 28-day cycle; returns the time of its last stop."""
        first = self.cycle_start(
            n, at_h, dose, hospital=hospital_days > 0, phase=phase, supervise=supervise
        )
        if hospital_days:
            self.add("encounter.discharged", at_h + hospital_days * 24 + 1)
        end = at_h + 28 * 24
        last = self.daily_bags(first, at_h, end, dose, step)
        self.complete(end, last)
        return end

    def sorted(self) -> list[dict[str, Any]]:
        return sorted(self.events, key=lambda e: e["ts"])


Scenario = tuple[str, str, list[str], str, Scn]
"""(name, requirement, expected codes, edition, stream)"""
SCENARIOS: list[Callable[[], Scenario]] = []


def scenario(fn: Callable[[], Scenario]) -> Callable[[], Scenario]:
    SCENARIOS.append(fn)
    return fn


def c1_start(s: Scn, dose: float = 9, **kw: Any) -> str:
    """Cycle 1 of a relapsed/refractory adult, in hospital, on a 7-day bag (no bag change soon)."""
    kw.setdefault("hours", 168)
    return s.cycle_start(1, 0, dose, **kw)


def c1_stepped(s: Scn, step_at: float = 167) -> str:
    """Cycle 1 with the step-up to 28 mcg/day (premedicated) on a second 7-day bag."""
    bag = c1_start(s)
    s.complete(step_at, bag).premed(step_at - 0.5)
    return s.bag_start(step_at + MIN, 28, hours=168)


def sc(name: str, req: str, codes: list[str], s: Scn, edition: str = "seed") -> Scenario:
    """A case's entry, edition last (most cases use the seed edition)."""
    return name, req, codes, edition, s


def mrd(weight: float = 70, **reg: Any) -> Scn:
    """An MRD-positive adult in hospital on cycle 1 at 28 mcg/day (no step), a 7-day bag."""
    s = Scn(weight=weight, indication="mrd_positive", **reg)
    s.cycle_start(1, 0, 28, hours=168)
    return s


def neuro_hold_then_restart(back: list[tuple[float, int]], restart_h: float) -> Scn:
    """A grade 3 neurotoxicity at the full dose (after the step-up), then a restart at 9."""
    s = Scn()
    c1_stepped(s)
    s.add("clinical.adverse_event", 200, category="neurotoxicity", grade=3)
    s.add("pump.infusion_stopped", 200 + MIN, reason="user")
    for at, grade in back:
        s.add("clinical.adverse_event", at, category="neurotoxicity", grade=grade)
    s.premed(restart_h - 1).add("nursing.supervision", restart_h, actor_role="nurse")
    s.bag_start(restart_h, 9, hours=168)
    return s
