"""``pumpguard drill --patients N --live``: a population fed to the live core in arrival order.

Documentation arrives up to 2 hours after the fact and pump servers resend
in a burst after a 30-minute outage (:mod:`pumpguard.simulations.arrival`);
the service's live core (:mod:`pumpguard.service.live`) evaluates each
arrival as the service would, ticking at every due deadline. The drill
measures what the ward would have seen: findings raised live, how many of
them were later withdrawn, how many were raised late, and whether what is
left equals a replay of the same events (live-only codes aside).
"""

from __future__ import annotations

import time
from typing import Any

from pumpguard.engine.core import Engine
from pumpguard.engine.events import event_adapter
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.replay import drive, time_ordered
from pumpguard.service.simulate import simulate
from pumpguard.simulations.arrival import ArrivalModel, arrivals
from pumpguard.simulations.montecarlo import generate_population

__all__ = ["live_drill"]

LIVE_ONLY = frozenset({"INTERRUPTION_WARNING"})


def live_drill(
    pack: CompiledPack, patients: int, error_rate: float, seed: int, edition: str
) -> dict[str, Any]:
    """Generate, feed live in arrival order, replay, and compare; the figures."""
    gen = generate_population(patients, error_rate, seed, edition)
    events = [event_adapter.validate_json(line) for line in gen.lines]
    arrived = arrivals(events, ArrivalModel(seed=seed))
    end = max(a.at for a in arrived)
    t0 = time.perf_counter()
    run = simulate(pack, arrived, end=end)
    live_s = time.perf_counter() - t0
    replayed = list(drive(Engine(pack), time_ordered(events), end=end))
    active = {f.finding_id for f in run.active if f.code not in LIVE_ONLY}
    want = {f.finding_id for f in replayed}
    withdrawn = run.withdrawn_ids
    raised = [f for f in run.raised if f.code not in LIVE_ONLY]
    return {
        "patients": patients,
        "events": len(events),
        "findings_live_raised": len(raised),
        "withdrawn": len(withdrawn),
        "raised_late": sum(1 for f in raised if f.late),
        "reevaluations": run.reevaluations,
        "findings_replay": len(want),
        "converged": active == want,
        "missing": sorted(want - active)[:5],
        "extra": sorted(active - want)[:5],
        "live_s": round(live_s, 2),
    }
