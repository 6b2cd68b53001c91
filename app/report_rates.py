"""The rates a committee compares, overall and week by week.

Findings per 100 patient-days on drug and per 100 bags hung, and the share of
bags changed on time: each with the exposure it is out of, so two wards (or
two months) of different size can be set side by side.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pumpguard.engine.findings import Finding
from pumpguard.report_metrics import DAY, WEEK, Moment, Population, Span, week_start
from pumpguard.report_spc import ControlChart, p_chart, u_chart

__all__ = [
    "Compliance",
    "Rate",
    "cited",
    "compliance",
    "finding_ts",
    "flagged_bags",
    "headline_charts",
    "patient_days_by_week",
    "rates",
]


@dataclass(frozen=True)
class Rate:
    """A count per 100 units of exposure."""

    label: str
    count: int
    exposure: float
    unit: str

    @property
    def per_100(self) -> float | None:
        return None if self.exposure <= 0 else 100.0 * self.count / self.exposure


def rates(pop: Population, findings: Sequence[Finding]) -> list[Rate]:
    """The headline rates over the whole log."""
    n = len(findings)
    severe = sum(f.severity.rank >= 3 for f in findings)
    days, bags = pop.patient_days, float(pop.bags)
    return [
        Rate("findings per 100 patient-days on drug", n, days, "patient-days"),
        Rate("high or critical findings per 100 patient-days", severe, days, "patient-days"),
        Rate("findings per 100 bags", n, bags, "bags"),
    ]


def patient_days_by_week(pop: Population) -> dict[float, float]:
    """Patient-days on drug per week: each running span split at the week boundaries."""
    out: dict[float, float] = defaultdict(float)
    for tl in pop.patients.values():
        for span in tl.running:
            t = span.start
            while t < span.end:
                week = week_start(t)
                cut = min(span.end, week + WEEK)
                out[week] += (cut - t) / DAY
                t = cut
    return out


def _weeks(pop: Population) -> list[float]:
    if pop.start is None:
        return []
    first, last = week_start(pop.start), week_start(pop.end)
    return [first + i * WEEK for i in range(int((last - first) // WEEK) + 1)]


def headline_charts(pop: Population, findings: Sequence[Finding]) -> list[ControlChart]:
    """Weekly u-charts (findings per 100 patient-days, per 100 bags), a p-chart (on-time bags)."""
    weeks = _weeks(pop)
    days = patient_days_by_week(pop)
    per_week = Counter(week_start(finding_ts(f)) for f in findings)
    bags_hung: Counter[float] = Counter()
    late: Counter[float] = Counter()
    overdue = flagged_bags(pop, findings, "BAG_OVERDUE")
    for tl in pop.patients.values():
        for i, bag in enumerate(tl.bags):
            week = week_start(bag.start)
            bags_hung[week] += 1
            late[week] += (tl.patient_id, i) in overdue
    return [
        u_chart(
            "Findings per 100 patient-days on drug (u-chart)",
            "patient-days",
            [(w, per_week[w], days.get(w, 0.0)) for w in weeks],
        ),
        u_chart(
            "Findings per 100 bags hung (u-chart)",
            "bags",
            [(w, per_week[w], float(bags_hung[w])) for w in weeks],
        ),
        p_chart(
            "Bags changed on time, % (p-chart)",
            "bags",
            [(w, bags_hung[w] - late[w], float(bags_hung[w])) for w in weeks],
        ),
    ]


# -- compliance: findings against the moments they concern --------------------


@dataclass(frozen=True)
class Compliance:
    """One requirement's compliance: how many of its moments went as the label asks."""

    requirement: str
    label: str
    numerator: int
    denominator: int
    code: str

    @property
    def percent(self) -> float | None:
        return None if self.denominator == 0 else 100.0 * self.numerator / self.denominator


def cited(findings: Sequence[Finding], code: str) -> set[tuple[str, str]]:
    """(patient, event id) of every event that a finding of ``code`` names as evidence."""
    return {(f.patient_id, e) for f in findings if f.code == code for e in f.evidence}


def _span_at(spans: Sequence[Span], ts: float) -> int | None:
    """Index of the last span that began at or before ``ts`` (the one a deadline belongs to)."""
    best = None
    for i, s in enumerate(spans):
        if s.start <= ts:
            best = i
    return best


def flagged_bags(pop: Population, findings: Sequence[Finding], code: str) -> set[tuple[str, int]]:
    """(patient, bag index) of the bags a ``code`` finding fell in."""
    out = set()
    for f in findings:
        tl = pop.patients.get(f.patient_id)
        if f.code != code or tl is None:
            continue
        i = _span_at(tl.bags, _ts(f))
        if i is not None:
            out.add((f.patient_id, i))
    return out


def _ts(f: Finding) -> float:
    ts: Any = f.ts
    if isinstance(ts, datetime):
        return ts.timestamp()
    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()


finding_ts = _ts


def _premed_due(pop: Population, m: Moment) -> bool:
    """Whether the label asks for premedication at this moment (R-PREMED)."""
    tl = pop.patients[m.patient_id]
    adult = tl.adult_at(m.ts, pop.params.adult_age_years)
    rr = tl.indication in (None, "relapsed_refractory")
    if m.kind == "cycle_start":
        return adult or m.cycle == 1
    if not adult:
        return m.cycle == 1 and (m.kind == "long_restart" or rr)
    return rr


def compliance(pop: Population, findings: Sequence[Finding]) -> list[Compliance]:
    """Compliance per requirement, each with its numerator and denominator."""
    return [
        _reinitiation(pop, findings),
        _bag_time(pop, findings),
        _hospitalization(pop, findings),
        _premedication(pop, findings),
        _line_flush(pop, findings),
    ]


def _reinitiation(pop: Population, findings: Sequence[Finding]) -> Compliance:
    """Long restarts that were not cited as unsupervised."""
    restarts = pop.moments("long_restart")
    bad = cited(findings, "REINITIATION_UNSUPERVISED")
    ok = sum((m.patient_id, m.event_id) not in bad for m in restarts)
    return Compliance(
        "R-REINIT",
        f"supervised reinitiations (after \u2265 {pop.params.reinit_threshold_h:g} h)",
        ok,
        len(restarts),
        "REINITIATION_UNSUPERVISED",
    )


def _bag_time(pop: Population, findings: Sequence[Finding]) -> Compliance:
    """Bags changed without an overdue finding."""
    over = flagged_bags(pop, findings, "BAG_OVERDUE")
    return Compliance(
        "R-BAG-TIME", "on-time bag changes", pop.bags - len(over), pop.bags, "BAG_OVERDUE"
    )


def _hospitalization(pop: Population, findings: Sequence[Finding]) -> Compliance:
    """Cycle 1 and 2 starts with no hospitalization finding falling in that cycle."""
    windows = [m for p in pop.patients.values() for m in p.cycles if m.cycle in (1, 2)]
    missed = set()
    for f in findings:
        tl = pop.patients.get(f.patient_id)
        if f.code == "HOSPITALIZATION_REQUIRED" and tl is not None:
            i = _span_at([Span(c.ts, c.ts, "") for c in tl.cycles], _ts(f))
            if i is not None:
                missed.add((f.patient_id, tl.cycles[i].ts))
    kept = sum((m.patient_id, m.ts) not in missed for m in windows)
    return Compliance(
        "R-HOSP",
        "hospitalization windows kept (cycles 1 and 2)",
        kept,
        len(windows),
        "HOSPITALIZATION_REQUIRED",
    )


def _premedication(pop: Population, findings: Sequence[Finding]) -> Compliance:
    """Moments that called for premedication (each counted once) not cited as missing it."""
    due = list(
        {
            (m.patient_id, m.event_id): m
            for p in pop.patients.values()
            for m in p.moments
            if _premed_due(pop, m)
        }.values()
    )
    no_premed = cited(findings, "PREMEDICATION_MISSING")
    given = sum((m.patient_id, m.event_id) not in no_premed for m in due)
    return Compliance(
        "R-PREMED",
        "premedication given (cycle starts, step-ups, long restarts)",
        given,
        len(due),
        "PREMEDICATION_MISSING",
    )


def _line_flush(pop: Population, findings: Sequence[Finding]) -> Compliance:
    """Bags with no line flush finding."""
    flushed = flagged_bags(pop, findings, "LINE_FLUSH")
    return Compliance(
        "R-FLUSH",
        "bags without a line flush incident",
        pop.bags - len(flushed),
        pop.bags,
        "LINE_FLUSH",
    )
