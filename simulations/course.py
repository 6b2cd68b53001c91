"""A deterministic builder of canonical event streams for whole Blincyto courses.

Writes what a well-run ward and pharmacy would produce (orders, admission,
premedication, dispensed bags, pump starts and completions, documented bag
changes, discharge) and lets a caller add deliberate errors at chosen times.
It is the bundled demo's source, the benchmark's load generator, and the base
the SimPy drills build on. The numbers it writes (rates, doses, windows) are
what the label asks for, so a clean course is a negative test of the pack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pumpguard.engine.builder import EventBuilder, check, to_line

__all__ = ["BAG_RATES", "BAG_VOLUMES", "CourseBuilder", "demo_start"]

BAG_RATES = {24: 10.0, 48: 5.0, 72: 3.3, 96: 2.5, 168: 0.6}
"""Label rates (mL/h) by bag duration; 72 h and 96 h are site-set (unconfirmed in the label)."""

BAG_VOLUMES = {24: 240.0, 48: 240.0, 72: 240.0, 96: 240.0, 168: 100.8}


@dataclass
class CourseBuilder:
    """Appends canonical events for one patient; ids are stable and sequential."""

    patient_id: str
    weight_kg: float = 70.0
    indication: str = "relapsed_refractory"
    bsa_m2: float | None = None
    birth_date: str | None = None
    pump_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _bag: int = 0
    _writer: EventBuilder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pump_id = self.pump_id or f"PUMP-{self.patient_id}"
        self._writer = EventBuilder(self.patient_id, self.pump_id)

    # -- low level ------------------------------------------------------------
    def add(self, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
        """Append one validated canonical record (the shared builder's conventions)."""
        ev = self._writer.record(type_, at, **fields)
        self.events.append(ev)
        return ev

    def amend(self, ev: dict[str, Any], **fields: Any) -> None:
        """Change a record already written (a deliberate error), validated again."""
        ev.update(fields)
        check(ev)

    def next_bag_id(self) -> str:
        self._bag += 1
        return f"{self.patient_id}-BAG{self._bag:03d}"

    # -- building blocks ----------------------------------------------------
    def register(self, at: datetime, device_kind: str = "ambulatory") -> None:
        extra = {"bsa_m2": self.bsa_m2, "birth_date": self.birth_date}
        self.add(
            "patient.registered", at, weight_kg=self.weight_kg, indication=self.indication, **extra
        )
        self.add("pump.registered", at, device_kind=device_kind, lockable=True, alarms=True)

    def dispense(
        self, at: datetime, dose: float, hours: int = 24, rate: float | None = None
    ) -> str:
        bag_id = self.next_bag_id()
        self.add(
            "bag.dispensed",
            at,
            bag_id=bag_id,
            drug="blinatumomab",
            dose_mcg_day=dose,
            duration_h=hours,
            rate_ml_h=BAG_RATES[hours],
            volume_ml=BAG_VOLUMES[hours],
            preservative=hours >= 72,
        )
        return bag_id

    def start(
        self, at: datetime, bag_id: str, dose: float, hours: int = 24, rate: float | None = None
    ) -> None:
        self.add(
            "pump.infusion_started",
            at,
            drug="blinatumomab",
            rate_ml_h=rate if rate is not None else BAG_RATES[hours],
            dose_mcg_day=dose,
            bag_id=bag_id,
        )

    def cycle(
        self,
        number: int,
        start: datetime,
        *,
        phase: str = "induction",
        doses: list[tuple[float, float]] | None = None,
        hospital_days: float = 0,
        supervise_start: bool = False,
        hours: int = 24,
        length_days: int = 28,
        premed_mg: float | None = 20.0,
    ) -> datetime:
        """One clean cycle: order, admission, premedication, bags, completion, discharge.

        ``doses`` lists (from infusion day, mcg/day); the step-up gets its own
        premedication. Returns the time of the cycle's last stop.
        """
        doses = doses or [(1, 28.0)]
        self.open_cycle(number, start, phase, doses[0][1], hospital_days, premed_mg)
        if supervise_start:
            self.add("nursing.supervision", start, actor_role="nurse")
        end = start + timedelta(days=length_days)
        discharge = start + timedelta(days=hospital_days, hours=1) if hospital_days else None
        self.bags(start, end, doses, hours, discharge, premed_mg)
        if discharge is not None and discharge > end:
            self.add("encounter.discharged", end + timedelta(hours=1))
        return end

    def open_cycle(
        self,
        number: int,
        start: datetime,
        phase: str,
        dose: float,
        hospital_days: float,
        premed_mg: float | None,
    ) -> None:
        """Before the first start: the order, the admission, the premedication."""
        self.add(
            "cycle.ordered",
            start - timedelta(hours=6),
            cycle=number,
            phase=phase,
            dose_mcg_day=dose,
        )
        if hospital_days:
            self.add(
                "encounter.admitted",
                start - timedelta(hours=2),
                setting="inpatient",
                location="Hematology ward",
            )
        if premed_mg:
            self.premedicate(start - timedelta(hours=1), premed_mg)

    def premedicate(self, at: datetime, mg: float) -> None:
        self.add("medication.administered", at, drug="dexamethasone", dose_mg=mg, route="IV")

    def bags(
        self,
        start: datetime,
        end: datetime,
        doses: list[tuple[float, float]],
        hours: int,
        discharge: datetime | None,
        premed_mg: float | None,
    ) -> None:
        """Bags from ``start`` to ``end``, changed every ``hours``, stepping as ``doses`` say."""

        def dose_at(when: datetime) -> float:
            current = doses[0][1]
            for from_day, value in doses:
                if start + timedelta(days=from_day - 1) <= when:
                    current = value
            return current

        t = start
        dose = dose_at(t)
        bag = self.dispense(t - timedelta(hours=3), dose, hours)
        self.start(t, bag, dose, hours)
        while True:
            nxt = t + timedelta(hours=hours)
            if nxt >= end:
                break
            if discharge is not None and t < discharge <= nxt:
                self.add("encounter.discharged", discharge)
            new_dose = dose_at(nxt)
            if new_dose != dose and premed_mg:
                self.premedicate(nxt - timedelta(hours=1), premed_mg)
            dose = new_dose
            self.add("pump.infusion_completed", nxt, bag_id=bag)
            new_bag = self.dispense(nxt - timedelta(hours=3), dose, hours)
            self.add(
                "nursing.bag_change",
                nxt + timedelta(minutes=2),
                bag_id=new_bag,
                actor_role="nurse",
                line_flushed=False,
            )
            bag = new_bag
            t = nxt + timedelta(minutes=5)
            self.start(t, bag, dose, hours)
        self.add("pump.infusion_completed", end, bag_id=bag)

    def sorted_events(self) -> list[dict[str, Any]]:
        return sorted(self.events, key=lambda e: e["ts"])

    def jsonl(self) -> Iterator[str]:
        for ev in self.sorted_events():
            yield to_line(ev)


def demo_start() -> datetime:
    """The bundled demo's first day (a fixed date, so the demo is byte-identical)."""
    return datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
