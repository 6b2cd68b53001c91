"""Weekly statistical-process-control charts: u-charts for rates, p-charts for proportions.

A committee asks whether a bad week is a signal or noise. Shewhart's charts
answer it with a centre line (the pooled rate over all weeks) and limits three
standard errors either side, which widen in weeks with little exposure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ControlChart", "WeekPoint", "p_chart", "u_chart"]


@dataclass(frozen=True)
class WeekPoint:
    """One week: its start (epoch seconds, Monday 00:00 UTC), count, exposure and limits."""

    week: float
    count: int
    exposure: float
    value: float | None
    lcl: float | None
    ucl: float | None

    @property
    def signal(self) -> bool:
        """Outside the 3-sigma limits: a week worth a look."""
        if self.value is None or self.ucl is None or self.lcl is None:
            return False
        return self.value > self.ucl or self.value < self.lcl


@dataclass(frozen=True)
class ControlChart:
    """A titled chart: kind (``u`` or ``p``), centre line, scale (per 100 ...) and weeks."""

    title: str
    kind: str
    unit: str
    centre: float | None
    scale: float
    points: tuple[WeekPoint, ...]


def u_chart(
    title: str, unit: str, weeks: Sequence[tuple[float, int, float]], scale: float = 100.0
) -> ControlChart:
    """Counts per ``scale`` units of exposure: ``weeks`` is (week, count, exposure units)."""
    total_c = sum(c for _, c, _ in weeks)
    total_n = sum(n for _, _, n in weeks) / scale
    centre = total_c / total_n if total_n > 0 else None
    points = []
    for week, count, exposure in weeks:
        n = exposure / scale
        if n <= 0 or centre is None:
            points.append(WeekPoint(week, count, exposure, None, None, None))
            continue
        sigma = math.sqrt(centre / n)
        points.append(
            WeekPoint(
                week, count, exposure, count / n, max(0.0, centre - 3 * sigma), centre + 3 * sigma
            )
        )
    return ControlChart(title, "u", unit, centre, scale, tuple(points))


def p_chart(title: str, unit: str, weeks: Sequence[tuple[float, int, float]]) -> ControlChart:
    """Proportions in percent: ``weeks`` is (week, successes, trials)."""
    total_d = sum(d for _, d, _ in weeks)
    total_n = sum(n for _, _, n in weeks)
    p = total_d / total_n if total_n > 0 else None
    points = []
    for week, count, trials in weeks:
        if trials <= 0 or p is None:
            points.append(WeekPoint(week, count, trials, None, None, None))
            continue
        sigma = math.sqrt(p * (1 - p) / trials)
        points.append(
            WeekPoint(
                week,
                count,
                trials,
                100 * count / trials,
                100 * max(0.0, p - 3 * sigma),
                100 * min(1.0, p + 3 * sigma),
            )
        )
    return ControlChart(title, "p", unit, None if p is None else 100 * p, 100.0, tuple(points))
