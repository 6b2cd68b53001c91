"""Shared fixtures: the bundled pack, an engine factory and a terse event builder."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from pumpguard.engine.builder import EventBuilder
from pumpguard.engine.core import Engine
from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.engine.replay import drive
from pumpguard.rules import default_pack

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session", name="pack")
def _pack() -> CompiledPack:
    return load_pack(default_pack())


class Stream:
    """Builds canonical events for one patient at offsets (hours) from T0.

    Numbering, times and pump fields are the shared builder's (engine.builder).
    """

    def __init__(self, patient_id: str = "p1", pump_id: str = "PUMP-1") -> None:
        self.patient_id = patient_id
        self.pump_id = pump_id
        self.events: list[Event] = []
        self._writer = EventBuilder(patient_id, pump_id)

    def add(self, type_: str, at_h: float, **fields: Any) -> Stream:
        self.events.append(self._writer.event(type_, T0 + timedelta(hours=at_h), **fields))
        return self

    # common pieces
    def registered(self, at_h: float = -2, **kw: Any) -> Stream:
        kw.setdefault("weight_kg", 70)
        kw.setdefault("indication", "relapsed_refractory")
        return self.add("patient.registered", at_h, **kw)

    def inpatient(self, at_h: float = -1) -> Stream:
        return self.add("encounter.admitted", at_h, setting="inpatient")

    def start(self, at_h: float, **kw: Any) -> Stream:
        kw.setdefault("drug", "blinatumomab")
        kw.setdefault("rate_ml_h", 10)
        kw.setdefault("dose_mcg_day", 9)
        return self.add("pump.infusion_started", at_h, **kw)

    def stop(self, at_h: float, reason: str = "occlusion") -> Stream:
        return self.add("pump.infusion_stopped", at_h, reason=reason)

    def resume(self, at_h: float) -> Stream:
        return self.add("pump.infusion_resumed", at_h)


@pytest.fixture(name="stream")
def _stream() -> Callable[..., Stream]:
    return Stream


Runner = Callable[..., list[Finding]]


@pytest.fixture(name="run")
def _run(pack: CompiledPack) -> Runner:
    """Evaluate events in order, then let the clock reach ``until`` (default: last event)."""

    def run(events: Iterable[Event], until_h: float | None = None, **kw: Any) -> list[Finding]:
        engine = Engine(kw.pop("pack", pack), **kw)
        end = (T0 + timedelta(hours=until_h)).timestamp() if until_h is not None else None
        return list(drive(engine, events, end=end))

    return run


@pytest.fixture(autouse=True)
def _close_stray_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """looptime asks for the current loop in every test, so a sync test makes one it never
    closes; the next async test drops it and its ResourceWarning fails the run. Close it."""
    yield
    if pytest_asyncio.is_async_test(request.node):
        return
    policy = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = policy.get_event_loop()
    except RuntimeError:  # none is set (closed and unset after an earlier test)
        return
    if not loop.is_running():
        loop.close()
        policy.set_event_loop(None)
