"""pumpguard: a safety rules engine for infusion pumps.

The public face for people embedding the engine::

    from pumpguard import Engine, LiveClock, default_pack, load_pack, parse_event

    engine = Engine(load_pack(default_pack(), edition="label-2024"), LiveClock())
    findings = engine.submit(parse_event(raw_json))

Names are imported on first use, so ``import pumpguard`` stays cheap (the CLI
reads only ``__version__``). :mod:`pumpguard.testing` has small helpers for
testing a site's own files.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Engine": "pumpguard.engine.core",
    "ENGINE_ERROR_CODE": "pumpguard.engine.core",
    "CompiledPack": "pumpguard.engine.pack",
    "load_pack": "pumpguard.engine.pack",
    "default_pack": "pumpguard.rules",
    "Finding": "pumpguard.engine.findings",
    "Severity": "pumpguard.engine.findings",
    "Event": "pumpguard.engine.events",
    "parse_event": "pumpguard.engine.events",
    "Clock": "pumpguard.engine.clock",
    "LiveClock": "pumpguard.engine.clock",
    "ManualClock": "pumpguard.engine.clock",
    "ReplayClock": "pumpguard.engine.clock",
    "SimulatedClock": "pumpguard.engine.clock",
    "Replay": "pumpguard.engine.replay",
    "EventSource": "pumpguard.adapters.base",
    "FindingSink": "pumpguard.adapters.base",
    "Reject": "pumpguard.adapters.base",
    "open_source": "pumpguard.adapters.detect",
    "PumpguardError": "pumpguard.engine.errors",
    "InputError": "pumpguard.engine.errors",
    "RulePackError": "pumpguard.engine.errors",
    "RuleEvaluationError": "pumpguard.engine.errors",
}
"""Every public name, and the module that defines it."""

__all__ = [
    "ENGINE_ERROR_CODE",
    "Clock",
    "CompiledPack",
    "Engine",
    "Event",
    "EventSource",
    "Finding",
    "FindingSink",
    "InputError",
    "LiveClock",
    "ManualClock",
    "PumpguardError",
    "Reject",
    "Replay",
    "ReplayClock",
    "RuleEvaluationError",
    "RulePackError",
    "Severity",
    "SimulatedClock",
    "__version__",
    "default_pack",
    "load_pack",
    "open_source",
    "parse_event",
]

if TYPE_CHECKING:
    from pumpguard.adapters.base import EventSource, FindingSink, Reject
    from pumpguard.adapters.detect import open_source
    from pumpguard.engine.clock import (
        Clock,
        LiveClock,
        ManualClock,
        ReplayClock,
        SimulatedClock,
    )
    from pumpguard.engine.core import ENGINE_ERROR_CODE, Engine
    from pumpguard.engine.errors import (
        InputError,
        PumpguardError,
        RuleEvaluationError,
        RulePackError,
    )
    from pumpguard.engine.events import Event, parse_event
    from pumpguard.engine.findings import Finding, Severity
    from pumpguard.engine.pack import CompiledPack, load_pack
    from pumpguard.engine.replay import Replay
    from pumpguard.rules import default_pack


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'pumpguard' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
