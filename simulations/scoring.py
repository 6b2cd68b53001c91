"""Run a generated stream through the engine in simulated time, and score it.

The engine runs on a :class:`SimulatedClock` over a SimPy environment, and
the replay's own driver (:func:`pumpguard.engine.replay.drive`) walks the
stream, stepping that clock: before each event it lets the clock reach the
deadlines due strictly earlier (events at time t come before deadlines at t,
as the spec reads), so a drill fires deadlines the way the live system would,
not only at the next event.

Scoring matches findings to injected deviations by patient and code: a
deviation is detected when every code it owes (that the pack can raise) has a
finding at or after its onset; a finding above ``info`` that no deviation
owes or allows is a false finding. Codes the loaded pack cannot raise yet are
reported as pending, never as missed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import simpy
from pumpguard.engine.clock import SimulatedClock
from pumpguard.engine.core import Engine
from pumpguard.engine.events import event_adapter
from pumpguard.engine.findings import Finding, Severity, rfc3339
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.replay import drive, time_ordered
from pumpguard.simulations.generator import Generated, Injected

__all__ = [
    "DeviationScore",
    "EngineRun",
    "Score",
    "raisable_codes",
    "run_engine",
    "score",
]

SLACK = timedelta(minutes=5)
"""A finding this long before a deviation's onset still counts (documentation jitter)."""


def raisable_codes(pack: CompiledPack) -> set[str]:
    """Codes some rule of the loaded pack can raise: what a drill can hold it to."""
    return {a.raise_.code for r in pack.rules for a in r.actions if a.raise_ is not None}


@dataclass
class EngineRun:
    """What the engine said about a stream, and how fast."""

    findings: list[Finding]
    events: int
    seconds: float
    engine_errors: int


def run_engine(lines: Iterable[str], pack: CompiledPack) -> EngineRun:
    """Validate and evaluate a time-ordered stream with a SimPy-driven simulated clock."""
    started = time.perf_counter()
    events = time_ordered(event_adapter.validate_json(line) for line in lines)
    if not events:
        return EngineRun([], 0, 0.0, 0)
    origin = events[0].ts.timestamp()
    env = simpy.Environment()
    engine = Engine(pack, SimulatedClock(env, origin, unit_s=1.0))

    def step(ts: float) -> None:
        # SimPy's clock only moves forward, and refuses to "run until" the present.
        if ts - origin > env.now:
            env.run(until=ts - origin)

    found = list(drive(engine, events, step=step))
    return EngineRun(found, len(events), time.perf_counter() - started, len(engine.errors))


@dataclass
class DeviationScore:
    """One injected deviation's outcome."""

    injected: Injected
    status: str  # detected | missed | pending | not_injected
    found: dict[str, str] = field(default_factory=dict)  # code -> first finding ts
    missing: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    ttd_h: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = self.injected.deviation
        return {
            "scenario": self.injected.scenario,
            "patient_id": self.injected.patient_id,
            "kind": d.kind,
            "variant": d.variant,
            "cycle": d.cycle,
            "day": d.day,
            "onset": _iso(self.injected.onset),
            "detail": self.injected.detail,
            "expect": list(self.injected.codes),
            "status": self.status,
            "found": self.found,
            "missing": self.missing,
            "pending": self.pending,
            "time_to_detection_h": self.ttd_h,
        }


@dataclass
class Score:
    """A drill's score: per deviation, false findings, and counts."""

    deviations: list[DeviationScore]
    false_findings: list[Finding]
    findings: int
    info_findings: int

    @property
    def missed(self) -> list[DeviationScore]:
        return [d for d in self.deviations if d.status in ("missed", "not_injected")]

    def count(self, status: str) -> int:
        return sum(1 for d in self.deviations if d.status == status)

    @property
    def detection_rate(self) -> float | None:
        scorable = self.count("detected") + len(self.missed)
        return None if scorable == 0 else self.count("detected") / scorable

    def summary(self) -> dict[str, Any]:
        ttd = [d.ttd_h for d in self.deviations if d.ttd_h is not None]
        return {
            "deviations": len(self.deviations),
            "detected": self.count("detected"),
            "missed": len(self.missed),
            "pending": self.count("pending"),
            "detection_rate": self.detection_rate,
            "false_findings": len(self.false_findings),
            "findings": self.findings,
            "info_findings": self.info_findings,
            "mean_time_to_detection_h": round(sum(ttd) / len(ttd), 2) if ttd else None,
            "max_time_to_detection_h": max(ttd) if ttd else None,
        }


def score(generated: Generated, findings: list[Finding], raisable: set[str]) -> Score:
    """Match findings to injected deviations; the rest above info are false findings."""
    by_patient: dict[str, list[Finding]] = {}
    info = 0
    for f in findings:
        if f.severity == Severity.INFO:
            info += 1
            continue
        by_patient.setdefault(f.patient_id, []).append(f)
    explained: set[str] = set()
    out: list[DeviationScore] = []
    for inj in generated.injected:
        if inj.onset is None:
            out.append(DeviationScore(inj, "not_injected", missing=list(inj.codes)))
            continue
        since = inj.onset - SLACK
        mine = [f for f in by_patient.get(inj.patient_id, []) if f.ts >= since]
        result = DeviationScore(inj, "pending")
        worst = 0.0
        for code in inj.codes:
            if code not in raisable:
                result.pending.append(code)
                continue
            hits = [f for f in mine if f.code == code]
            if not hits:
                result.missing.append(code)
                continue
            first = min(hits, key=lambda f: f.ts)
            result.found[code] = rfc3339(first.ts)
            worst = max(worst, (first.ts - inj.onset).total_seconds() / 3600)
        for f in mine:
            if f.code in inj.codes or f.code in inj.allow:
                explained.add(f.finding_id)
        if result.missing:
            result.status = "missed"
        elif result.found:
            result.status = "detected"
            result.ttd_h = round(max(0.0, worst), 2)
        out.append(result)
    false = [f for fs in by_patient.values() for f in fs if f.finding_id not in explained]
    false.sort(key=lambda f: (f.ts, f.patient_id))
    return Score(out, false, len(findings), info)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%SZ")
