"""Clocks: where "now" comes from. Injected, never read from the wall by the engine.

Three uses, one interface (SimPy's clock-as-an-object): replay takes time from
the events themselves, live middleware from a monotonic clock anchored to the
wall once at start, drills from the simulation. The rules cannot tell which
one drives them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

__all__ = ["Clock", "LiveClock", "ManualClock", "Mode", "ReplayClock", "SimulatedClock"]

Mode = Literal["replay", "live", "drill"]
"""Which use drives the engine; the clock says it, so the two can never contradict."""


class Clock(Protocol):
    """Event time in epoch seconds, and which use it serves."""

    @property
    def mode(self) -> Mode: ...

    def now(self) -> float: ...

    def observe(self, ts: float) -> None:
        """An event of time ``ts`` was evaluated (a replay clock follows the events)."""


class ReplayClock:
    """Time is the latest event time seen; it never goes backwards."""

    def __init__(self, start: float = float("-inf"), *, mode: Mode = "replay") -> None:
        self._now = start
        self._mode: Mode = mode

    @property
    def mode(self) -> Mode:
        return self._mode

    def now(self) -> float:
        return self._now

    def observe(self, ts: float) -> None:
        self._now = max(self._now, ts)


class ManualClock(ReplayClock):
    """A clock tests move by hand (``mode="live"`` to stand in for the live clock)."""

    def set(self, ts: float) -> None:
        self._now = ts

    def advance(self, seconds: float) -> None:
        self._now += seconds


class LiveClock:
    """Wall time read once, then advanced by a monotonic clock (NTP steps cannot move it back)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._anchor = wall()
        self._mono = monotonic
        self._start = monotonic()

    @property
    def mode(self) -> Mode:
        return "live"

    def now(self) -> float:
        return self._anchor + (self._mono() - self._start)

    def observe(self, ts: float) -> None:
        """Live time is the wall's, whatever the events say."""


class SimulatedClock:
    """A SimPy environment's ``now`` (in hours) from an epoch origin."""

    def __init__(self, env: object, origin: float, unit_s: float = 3600.0) -> None:
        self._env = env
        self._origin = origin
        self._unit = unit_s

    @property
    def mode(self) -> Mode:
        return "drill"

    def now(self) -> float:
        return self._origin + float(getattr(self._env, "now", 0.0)) * self._unit

    def observe(self, ts: float) -> None:
        """Simulated time is the simulation's."""
