"""The live core in simulated service time: arrivals in, what a ward would have seen out.

The same :class:`~.live.LiveCore` the service runs, fed journal inputs the
way the service makes them (each arrival an input; a tick whenever the next
deadline falls due before the next arrival), with an in-memory journal. It is
how the tests and ``pumpguard drill --live`` measure late-data convergence:
how many findings were raised live and then withdrawn, and whether the live
findings less the withdrawn equal a replay of the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding, Withdrawal
from pumpguard.engine.pack import CompiledPack
from pumpguard.simulations.arrival import Arrival

from .live import LiveCore

__all__ = ["LiveRun", "MemoryHistory", "SimInput", "simulate"]


@dataclass(frozen=True, slots=True)
class SimInput:
    """A journal input made in memory (the journal's ``JournalInput`` has the same shape)."""

    position: int
    kind: str
    at: float
    events: tuple[Event, ...] = ()


@dataclass(slots=True)
class MemoryHistory:
    """A journal's per-patient event index, in memory."""

    rows: dict[str, list[tuple[int, Event]]] = field(default_factory=dict)

    def add(self, position: int, events: Iterable[Event]) -> None:
        for e in events:
            self.rows.setdefault(e.patient_id, []).append((position, e))

    def patient_events(
        self, patient_id: str, *, since_ts: float | None = None
    ) -> list[tuple[int, Event]]:
        rows = self.rows.get(patient_id, [])
        if since_ts is None:
            return list(rows)
        return [(p, e) for p, e in rows if e.ts.timestamp() >= since_ts]


@dataclass(slots=True)
class LiveRun:
    """What a live run raised, withdrew and kept, and the inputs it was fed."""

    raised: list[Finding] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    inputs: list[SimInput] = field(default_factory=list)
    end: float = float("-inf")
    reevaluations: int = 0
    active: list[Finding] = field(default_factory=list)

    @property
    def withdrawn_ids(self) -> set[str]:
        return {w.withdraws for w in self.withdrawals}


def simulate(
    pack: CompiledPack,
    arrivals: Iterable[Arrival],
    *,
    end: float | None = None,
    late_after_s: float = 300.0,
    core: LiveCore | None = None,
) -> LiveRun:
    """Feed arrivals to a live core, ticking at each due deadline; a last tick at ``end``."""
    history = MemoryHistory()
    core = core or LiveCore(pack, history, late_after_s=late_after_s)
    core.history = history
    run = LiveRun()

    def feed(inp: SimInput) -> None:
        run.inputs.append(inp)
        history.add(inp.position, inp.events)
        out = core.process(inp)
        run.raised.extend(out.findings)
        run.withdrawals.extend(out.withdrawals)

    last = float("-inf")
    for a in arrivals:
        _ticks_until(core, a.at, feed, run)
        feed(SimInput(len(run.inputs) + 1, "events", a.at, (a.event,)))
        last = max(last, a.at)
    stop = last if end is None else end
    _ticks_until(core, stop, feed, run)
    feed(SimInput(len(run.inputs) + 1, "tick", stop))
    run.end = stop
    run.reevaluations = core.reevaluations
    run.active = core.active_findings()
    return run


def _ticks_until(core: LiveCore, at: float, feed: Callable[[SimInput], None], run: LiveRun) -> None:
    """The scheduler: a tick at each deadline due by ``at`` (a tick fires all due by then)."""
    due = core.next_due()
    while due is not None and due <= at:
        feed(SimInput(len(run.inputs) + 1, "tick", due))
        after = core.next_due()
        if after is not None and after <= due:  # a deadline opened for the same instant
            feed(SimInput(len(run.inputs) + 1, "tick", due))
            after = core.next_due()
        due = after
