"""Findings never depend on the order of one patient's events within a second.

spec/blincyto.md, "Same second, any order": documentation at the second of a
pump act counts as made before it, whichever line or file comes first. Two
events of the same kind (two pump acts) keep their input order, so a
permutation that keeps those relative orders must give byte-identical findings,
in one file or split across two.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pumpguard.engine.core import Engine
from pumpguard.engine.events import event_adapter
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.engine.replay import Replay
from pumpguard.rules import default_pack

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILES = [
    *sorted(SCENARIOS.glob("same_second_*.jsonl")),
    SCENARIOS / "restart_at_9_during_open_hold_fires.jsonl",
    SCENARIOS / "premed_missing_at_cycle_start_fires.jsonl",
    SCENARIOS / "hosp_discharge_day5_fires.jsonl",
]


def _collided(path: Path) -> list[dict[str, Any]]:
    """The scenario with every time cut to its hour: many events share each second."""
    out = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        event["ts"] = ts.replace(minute=0, second=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(event)
    return out


def _kind(event: dict[str, Any]) -> str:
    """The spec's "kind": pump acts, or one family of documentation (``encounter``, ...)."""
    return str(event["type"]).split(".", 1)[0]


def _shuffle_within_seconds(events: list[dict[str, Any]], rnd: Any) -> list[dict[str, Any]]:
    """Permute each (patient, second) group, keeping same-kind events in their order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        groups[(e["patient_id"], e["ts"])].append(e)
    out: list[dict[str, Any]] = []
    for key in sorted(groups):
        group = groups[key]
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in group:
            by_kind[_kind(e)].append(e)
        slots = [k for k, items in by_kind.items() for _ in items]
        rnd.shuffle(slots)
        taken = {k: iter(items) for k, items in by_kind.items()}
        out.extend(next(taken[k]) for k in slots)
    return out


@pytest.fixture(scope="module", name="pack")
def _pack() -> CompiledPack:
    return load_pack(default_pack(), edition="label-2024")


def _replay(pack: CompiledPack, parts: list[list[dict[str, Any]]]) -> str:
    """The replay of several inputs (file order, then line order), as findings JSONL."""
    replay = Replay(Engine(pack))
    for n, part in enumerate(parts):
        for line, raw in enumerate(part, 1):
            replay.add(event_adapter.validate_json(json.dumps(raw)), f"in{n}", f"line {line}")
    rejected: list[str] = []
    found = [f.to_json() for f in replay.run(lambda r: rejected.append(str(r)))]
    assert rejected == []
    return "\n".join(found)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(FILES),
    rnd=st.randoms(use_true_random=False),
    split=st.booleans(),
)
def test_same_second_permutations_give_identical_findings(pack, which, rnd, split):
    events = _collided(which)
    baseline = _replay(pack, [events])
    shuffled = _shuffle_within_seconds(events, rnd)
    if split:
        # across files, each file keeps its own lines' order; same-kind order must survive the
        # split, so a kind's events all go to the file its first event went to
        home: dict[tuple[str, str, int], int] = {}
        parts: list[list[dict[str, Any]]] = [[], []]
        for e in shuffled:
            key = (e["patient_id"], e["ts"], _kind(e))
            parts[home.setdefault(key, rnd.randrange(2))].append(e)
        assert _replay(pack, parts) == baseline
    else:
        assert _replay(pack, [shuffled]) == baseline
