"""Where an event's time goes: microseconds per event for each stage of the hot path.

Each stage's function is wrapped with a timer for one instrumented run (so the
total is slower than an uninstrumented one); "engine loop" is what the engine's
own submit spends outside the timed stages.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

STAGES = (
    "reading",
    "validation",
    "state apply",
    "state view",
    "event fields",
    "gate",
    "json message",
    "durable-rules",
    "actions",
    "engine loop",
    "output",
)


def _timed(fn: Callable[..., Any], acc: dict[str, float], name: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.perf_counter() - t

    return wrapper


def breakdown(path: str) -> tuple[int, dict[str, float]]:
    """Run the engine over ``path`` (time-ordered JSONL); return (events, us per event by stage)."""
    from pumpguard.engine import actions, core, host, state
    from pumpguard.engine.events import event_adapter
    from pumpguard.engine.pack import load_pack
    from pumpguard.rules import default_pack

    acc = dict.fromkeys(STAGES, 0.0)
    state.PatientState.apply = _timed(state.PatientState.apply, acc, "state apply")  # type: ignore[method-assign]
    state.PatientState.view = _timed(state.PatientState.view, acc, "state view")  # type: ignore[method-assign]
    core.event_fields = _timed(core.event_fields, acc, "event fields")
    host.check_message = _timed(host.check_message, acc, "gate")
    host._encode = _timed(host._encode, acc, "json message")
    host.RuleHost._assert_fact = _timed(host.RuleHost._assert_fact, acc, "durable-rules")  # type: ignore[method-assign]
    actions.ActionRunner.run = _timed(actions.ActionRunner.run, acc, "actions")  # type: ignore[method-assign]
    engine = core.Engine(load_pack(default_pack()))
    t = time.perf_counter()
    with open(path, "rb") as fh:
        lines = fh.readlines()
    acc["reading"] = time.perf_counter() - t
    t = time.perf_counter()
    events = [event_adapter.validate_json(line) for line in lines]
    acc["validation"] = time.perf_counter() - t
    found = []
    t = time.perf_counter()
    for ev in events:
        found.extend(engine.submit(ev))
    found.extend(engine.advance(engine.watermark))
    inner = sum(acc[s] for s in STAGES[2:9])
    acc["engine loop"] = time.perf_counter() - t - inner
    t = time.perf_counter()
    for f in found:
        f.to_json()
    acc["output"] = time.perf_counter() - t
    n = len(events)
    return n, {name: 1e6 * acc[name] / n for name in STAGES}
