"""The ward around the pump: pharmacy, admissions and the documentation staff write.

:class:`WardSim` adds to the patient's base what happens away from the pump:
the pharmacy labels and dispenses bags, admissions admit and discharge, and
nurses document premedication and supervision, sometimes a little after the
act and sometimes at its very second (listed before or after it).
"""

from __future__ import annotations

from collections.abc import Callable

import simpy
from pumpguard.simulations.course import BAG_RATES, BAG_VOLUMES
from pumpguard.simulations.patient import PatientBase
from pumpguard.simulations.records import DAY, DRUG, Bag, Doc, H, Proc

__all__ = ["WardSim"]


class WardSim(PatientBase):
    """Pharmacy, admissions and documentation for one patient."""

    # -- documentation ---------------------------------------------------------
    def at_the_second(self, fn: Doc) -> None:
        """Write ``fn`` at the coming act's very second, listed before or after it."""
        (self.before if self.rng.random() < 0.5 else self.after).append(fn)

    def premed(self) -> None:
        options = self.proto.premed_doses(self.p.age_years, self.p.indication, self.bsa)
        drug, mg = options[0] if len(options) == 1 else self.rng.choice(options)
        self.emit("medication.administered", drug=drug, dose_mg=mg, route="IV")

    def premed_or_same_second(self) -> None:
        if self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_premedication")
            self.at_the_second(self.premed)
        else:
            self.premed()

    def supervise_at_act(self) -> None:
        """Supervision of the coming start: a few minutes after it, or at its very second."""
        fn: Doc = lambda: self.emit("nursing.supervision", actor_role=self.role())  # noqa: E731
        if self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_supervision")
            self.at_the_second(fn)
        else:
            delay = self.doc_delay()
            self.after.append(lambda: self.later(delay, fn))

    # -- pharmacy --------------------------------------------------------------
    def dispense(self, hours: int, dose: float, *, flag: bool | None = None) -> Bag:
        """Label a bag; a preserved one carries the flag (``flag=False``: left out)."""
        self.bag_n += 1
        bag = Bag(f"{self.pid}-BAG{self.bag_n:03d}", hours, dose)
        preserved = hours >= 72
        if flag is None and preserved:
            flag = True
            if self.b.unflagged_preservative and self.rng.random() < self.b.unflagged_preservative:
                # the spec reads the bag's duration, not the flag: a 72 h+ bag is preserved
                self.saw("unflagged_preservative")
                flag = False
        if preserved and flag is False:
            flag = None  # an unknown value is left out, never sent as false
        self.emit(
            "bag.dispensed",
            bag_id=bag.bag_id,
            drug=DRUG,
            dose_mcg_day=dose,
            duration_h=hours,
            rate_ml_h=BAG_RATES[hours],
            volume_ml=BAG_VOLUMES[hours],
            preservative=flag if preserved else False,
        )
        return bag

    def pharmacy(self, at: int, plan: Callable[[], tuple[int, float]]) -> simpy.Process:
        """The pharmacy process: at ``at`` it labels and dispenses the bag ``plan`` describes."""

        def proc() -> Proc:
            yield self.env.timeout(max(0, at - self.t))
            hours, dose = plan()
            small = self.take("preservative_bag_small_patient")
            if small is not None:
                hours = 168 if small.deviation.variant == "flagged" else 96
                flagged = small.deviation.variant != "unflagged"
                bag = self.dispense(hours, dose, flag=flagged)
                self.mark(small, detail=f"{hours} h preserved bag for a {self.weight:g} kg patient")
                return bag
            return self.dispense(hours, dose)

        return self.env.process(proc())

    def register_pump(self, kind: str) -> None:
        elastomeric = kind in ("elastomeric", "gravity")
        self.emit(
            "pump.registered",
            device_kind=kind,
            lockable=not elastomeric,
            alarms=not elastomeric,
            model="Elastomeric 2 mL/h" if elastomeric else "CADD-Solis",
        )

    # -- admissions ------------------------------------------------------------
    def admit(self, setting: str = "inpatient") -> None:
        if not self.hospitalized:
            self.emit("encounter.admitted", setting=setting, location="Hematology ward")
            self.hospitalized = True

    def discharge(self) -> None:
        if self.hospitalized:
            self.emit("encounter.discharged")
            self.hospitalized = False

    def admissions(
        self, start: int, days: float, cycle_end: simpy.Event, *, exact: bool = False
    ) -> Proc:
        """Admit 2 h before the cycle (or at its very second), discharge after ``days``."""
        if days <= 0:
            return
        if not exact and self.b.same_second and self.rng.random() < self.b.same_second:
            self.saw("same_second_admission")
            yield self.env.timeout(max(0, start - 3 * H - self.t))
            self.hospitalized = True  # decided now, written at the start's second
            self.at_the_second(
                lambda: self.emit("encounter.admitted", setting="inpatient", location="Ward")
            )
        else:
            yield self.env.timeout(max(0, start - 2 * H - self.t))
            self.admit()
        if self.c.home_infusion or exact:
            out = start + round(days * DAY) + (0 if exact else self.rng.randint(60, 240))
            yield self.env.any_of([self.env.timeout(max(0, out - self.t)), cycle_end])
        else:
            yield cycle_end
        if cycle_end.triggered:
            yield self.env.timeout(60)
        self.discharge()
