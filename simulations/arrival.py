"""When events reach the middleware, as opposed to when they happened.

Nurses document minutes to hours after the fact, and a pump server that lost
its link buffers what its pumps said and resends it in a burst when the link
returns. A live drill orders a generated stream by arrival, not by event
time, so the service's late-data path (re-evaluation and withdrawals) is
exercised the way a ward exercises it. Seeded: the same stream and seed give
the same arrival order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pumpguard.engine.events import Event

__all__ = ["Arrival", "ArrivalModel", "arrivals"]

_DOCUMENTATION = ("nursing.", "medication.", "clinical.", "encounter.", "order.")


@dataclass(frozen=True, slots=True)
class ArrivalModel:
    """How late things arrive: documentation up to ``doc_delay_max_s``, pump outages buffered."""

    seed: int = 2026
    doc_late_fraction: float = 0.5
    doc_delay_max_s: float = 2 * 3600.0
    pump_delay_s: float = 1.0
    outage_fraction: float = 0.3
    outage_s: float = 30 * 60.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """One event and the service-clock time it arrives at."""

    at: float
    event: Event


def _is_documentation(event: Event) -> bool:
    return event.type.startswith(_DOCUMENTATION) or event.type.endswith("weight_recorded")


def _outages(events: Sequence[Event], model: ArrivalModel, rng: random.Random) -> dict[str, float]:
    """One outage window start per chosen pump, inside that pump's active span."""
    spans: dict[str, tuple[float, float]] = {}
    for e in events:
        pump = getattr(e, "pump_id", None)
        if pump is None:
            continue
        ts = e.ts.timestamp()
        lo, hi = spans.get(pump, (ts, ts))
        spans[pump] = (min(lo, ts), max(hi, ts))
    chosen: dict[str, float] = {}
    for pump in sorted(spans):
        lo, hi = spans[pump]
        if hi - lo > model.outage_s and rng.random() < model.outage_fraction:
            chosen[pump] = rng.uniform(lo, hi - model.outage_s)
    return chosen


def arrivals(events: Sequence[Event], model: ArrivalModel | None = None) -> list[Arrival]:
    """The events in the order the service receives them (ties keep the stream's order)."""
    model = model or ArrivalModel()
    rng = random.Random(model.seed)
    outages = _outages(events, model, rng)
    timed: list[tuple[float, int, Event]] = []
    for i, e in enumerate(events):
        ts = e.ts.timestamp()
        if _is_documentation(e):
            late = rng.random() < model.doc_late_fraction
            at = ts + (rng.uniform(0, model.doc_delay_max_s) if late else rng.uniform(0, 60))
        else:
            at = ts + model.pump_delay_s
            start = outages.get(getattr(e, "pump_id", None) or "")
            if start is not None and start <= ts < start + model.outage_s:
                at = start + model.outage_s + model.pump_delay_s  # the burst after the outage
        timed.append((at, i, e))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [Arrival(at, e) for at, _, e in timed]
