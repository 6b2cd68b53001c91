"""A SimPy generator of Blincyto courses: pump, nurse, pharmacy and admissions as processes.

Time is SimPy's ``env.now`` in whole minutes from an origin (integers, so no
float drift can move an event across a window's edge). Each patient draws from
its own ``random.Random``, seeded from the scenario seed and the patient's
index, so one patient's deviations never shift another patient's stream, and
the same scenario and seed give the same bytes.

Every clinical number (doses, windows, thresholds, cycle length and maxima,
premedication, preservative floor) comes from the :class:`Protocol` of the
loaded pack, edition and site included; the generator holds none of its own.
What a clean course looks like follows ``blincyto.md`` as revised: an order
before each cycle, admission for the indication's hospital window,
premedication where R-PREMED asks for it (adults before each cycle's first
dose; R/R adults also before a step-up and a restart after the reinitiation
threshold; children in cycle 1 only), bags dispensed with their label rate and
dose, changed on schedule by a professional without a flush, supervision at
cycle 3+ starts and long restarts.

:class:`~pumpguard.simulations.scenario.Behaviours` add what real feeds and
wards produce without any error: hot swaps, lost stops, lost cycle orders,
documentation at the very second of a start (listed before or after it),
weights recorded mid-course, preserved bags without their flag, interruptions
from minutes to days (longer than the limit: a new cycle is ordered), and
grade 3 reactions held and restarted by the book.

Deviations are injected at (cycle, day); each one records its onset (the
simulated time it became real), which scoring compares with the findings.

The simulated patient is built in layers, one module each: ``patient`` (state,
writer, bookkeeping, the pack's numbers), ``ward`` (pharmacy, admissions,
documentation), ``pump``, ``nursing`` (the bag loop) and ``cycles`` (the
prescriber's course); ``injected`` holds the drill's point deviations and
``routine`` the clean behaviours. This module runs many patients together.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import simpy
from pumpguard.simulations.cycles import PatientSim
from pumpguard.simulations.protocol import Protocol, load_protocol
from pumpguard.simulations.records import Generated, Injected, PatientPlan, Proc, Sink
from pumpguard.simulations.routine import short_stops
from pumpguard.simulations.scenario import Scenario

__all__ = ["Generated", "Injected", "PatientPlan", "Population", "generate"]


class Population:
    """Many patients in one SimPy environment; each with its own seeded stream of chance."""

    def __init__(self, origin: datetime, seed: int | str, protocol: Protocol) -> None:
        self.env = simpy.Environment()
        self.sink = Sink(origin=origin - timedelta(days=1))
        self.seed = seed
        self.protocol = protocol
        self.sims: list[PatientSim] = []

    def add(self, plan: PatientPlan) -> None:
        rng = random.Random(f"{self.seed}/{len(self.sims)}/{plan.patient.id}")
        sim = PatientSim(self.env, self.sink, plan, rng, self.protocol)
        self.sims.append(sim)
        self.env.process(sim.course())
        self.env.process(_watch_cycles(sim))

    def run(self) -> Generated:
        self.env.run()
        injected = [inj for sim in self.sims for inj in sim.injected]
        return Generated(
            self.sink.lines, injected, len(self.sims), dict(sorted(self.sink.seen.items()))
        )


def _watch_cycles(sim: PatientSim) -> Proc:
    """Start the clean short stops of each cycle, and keep ``bag_proc`` pointing at the pump."""
    seen = 0
    while True:
        ev = sim.env.event()
        sim.hang_listeners.append(ev)
        yield ev
        if sim.cycle != seen:
            seen = sim.cycle
            sim.env.process(short_stops(sim, seen))
        if sim.stop_course and not sim.running:
            return


def generate(
    scenario: Scenario, protocol: Protocol | None = None, seed: int | None = None
) -> Generated:
    """One scenario's stream under ``protocol`` (default: the scenario's edition and site)."""
    if protocol is None:
        _, protocol = load_protocol(scenario.patient.edition, scenario.site_file)
    scenario.check(protocol)
    pop = Population(scenario.start, scenario.seed if seed is None else seed, protocol)
    pop.add(
        PatientPlan(
            scenario.patient,
            scenario.course,
            scenario.staff,
            scenario.deviations,
            scenario=scenario.name,
            behaviours=scenario.behaviours,
        )
    )
    return pop.run()
