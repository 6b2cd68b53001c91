"""The rates a committee compares, overall and week by week.

Findings per 100 patient-days on drug and per 100 bags hung, and the share of
bags changed on time: each with the exposure it is out of, so two wards (or
two months) of different size can be set side by side.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from pumpguard.engine.findings import Finding
from pumpguard.report_metrics import (
    DAY,
    WEEK,
    Population,
    finding_ts,
    flagged_bags,
    week_start,
)
from pumpguard.report_spc import ControlChart, p_chart, u_chart

__all__ = ["Rate", "headline_charts", "patient_days_by_week", "rates"]


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
