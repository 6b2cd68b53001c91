"""Evaluation during pass 1 (issue 14): an input already in replay order is evaluated as
it is read, with the bytes the spooled pass 2 gives; whatever the duplicate check or
the order could change goes back to the spools."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from pumpguard.engine import partition as engine_partition
from pumpguard.engine.events import Event, event_adapter
from pumpguard.engine.partition import partition_of
from pumpguard.engine.rejects import Reject
from pumpguard.engine.replay import time_ordered
from pumpguard.partition import Scale, replay
from pumpguard.simulations.montecarlo import generate_population

PARTITIONS = 7


@pytest.fixture(scope="module")
def ordered() -> list[Event]:
    """A drill population (errors injected) in the replay order, every id once."""
    lines = generate_population(8, 0.6, 2026).lines
    events = time_ordered(event_adapter.validate_json(x) for x in lines)
    seen: set[str] = set()
    unique = [e for e in events if not (e.event_id in seen or seen.add(e.event_id))]
    assert len({partition_of(e.patient_id, PARTITIONS) for e in unique}) >= 4
    return unique


def _outcome(
    events: list[Event], pack: Any, tmp: Path, *, in_order: bool, until: float | None = None
) -> tuple[list[str], list[str], dict[str, Any], int]:
    rejects: list[Reject] = []
    outcome = replay(
        ((e, "in.jsonl", f"line {n}") for n, e in enumerate(events, 1)),
        pack,
        until=until,
        scale=Scale(partitions=PARTITIONS, tmp=tmp, in_order=in_order),
        on_reject=rejects.append,
    )
    findings = [f.model_dump_json() for f in outcome.findings]
    stats = asdict(outcome.stats) | {"errors": outcome.engine_errors}
    return findings, [f"{r.position}: {r.reason}" for r in rejects], stats, outcome.decided_in_order


def _same_bytes(events: list[Event], pack: Any, tmp: Path, **kw: Any) -> int:
    """Partitions decided in order; asserts the findings, rejects and counts match the spools'."""
    *fast, decided = _outcome(events, pack, tmp, in_order=True, **kw)
    *spooled, none = _outcome(events, pack, tmp, in_order=False, **kw)
    assert none == 0
    assert fast == spooled
    return decided


def _partitions(events: list[Event]) -> set[int]:
    return {partition_of(e.patient_id, PARTITIONS) for e in events}


def _copy(event: Event, **changes: Any) -> Event:
    return event_adapter.validate_python(event.model_dump() | changes)


def test_an_input_in_replay_order_is_decided_while_read_with_the_spooled_bytes(
    ordered, pack, tmp_path
):
    decided = _same_bytes(ordered, pack, tmp_path)
    assert decided == len({partition_of(e.patient_id, PARTITIONS) for e in ordered})
    assert len(_outcome(ordered, pack, tmp_path, in_order=True)[0]) >= 5


def test_a_duplicate_sends_only_its_partition_back_to_the_spool(ordered, pack, tmp_path):
    copy = ordered[40]
    events = [*ordered[:41], copy, *ordered[41:]]  # a resend, straight after the first
    partitions = {partition_of(e.patient_id, PARTITIONS) for e in ordered}
    assert _same_bytes(events, pack, tmp_path) == len(partitions) - 1


def test_a_conflicting_id_sends_the_partitions_of_its_versions_back(ordered, pack, tmp_path):
    first = ordered[40]
    other = next(
        e
        for e in ordered[300:]
        if partition_of(e.patient_id, PARTITIONS) != partition_of(first.patient_id, PARTITIONS)
    )
    clash = _copy(other, event_id=first.event_id)
    events = [*ordered[: ordered.index(other)], clash, *ordered[ordered.index(other) + 1 :]]
    partitions = {partition_of(e.patient_id, PARTITIONS) for e in ordered}
    assert _same_bytes(events, pack, tmp_path) == len(partitions) - 2


def test_a_straggler_leaves_only_its_partition_to_the_spools(ordered, pack, tmp_path):
    late = ordered[200]
    events = [*ordered[:200], *ordered[201:320], late, *ordered[320:]]
    assert ordered[319].ts > late.ts  # it really comes after later events
    assert _same_bytes(events, pack, tmp_path) == len(_partitions(ordered)) - 1


def test_a_shuffled_input_is_left_to_the_spools(ordered, pack, tmp_path):
    import random

    events = list(ordered)
    random.Random(7).shuffle(events)
    assert _same_bytes(events, pack, tmp_path) == 0


def test_a_same_second_pair_of_one_patient_listed_pump_act_first_is_left_to_the_spools(
    ordered, pack, tmp_path
):
    i = next(n for n, e in enumerate(ordered) if e.type == "pump.infusion_started")
    start = ordered[i]
    premed = _copy(
        start,
        event_id="premed-same-second",
        type="medication.administered",
        drug="dexamethasone",
        dose_mg=20.0,
        route="IV",
    )
    events = [*ordered[: i + 1], premed, *ordered[i + 1 :]]
    assert _same_bytes(events, pack, tmp_path) == len(_partitions(ordered)) - 1


def test_same_instant_events_of_two_patients_in_either_order_stay_in_order(ordered, pack, tmp_path):
    a = ordered[100]
    b = next(e for e in ordered[101:] if e.patient_id != a.patient_id)
    moved = _copy(b, event_id="same-instant", ts=a.ts)
    events = [*ordered[:100], moved, *ordered[100:]]  # b's event listed before a's, same instant
    partitions = {partition_of(e.patient_id, PARTITIONS) for e in ordered}
    assert _same_bytes(events, pack, tmp_path) == len(partitions)


def test_events_after_until_are_counted_alike(ordered, pack, tmp_path):
    until = ordered[len(ordered) // 2].ts.timestamp()
    decided = _same_bytes(ordered, pack, tmp_path, until=until)
    assert decided > 0
    assert _outcome(ordered, pack, tmp_path, in_order=True, until=until)[2]["after_until"] > 0


def test_the_partitions_of_patients_beyond_its_limit_are_left_to_the_spools(
    ordered, pack, tmp_path, monkeypatch
):
    monkeypatch.setattr(engine_partition, "IN_ORDER_PATIENTS", 3)
    assert 0 < _same_bytes(ordered, pack, tmp_path) < len(_partitions(ordered))


def test_a_worker_pool_never_evaluates_during_pass_1(ordered, pack, tmp_path):
    outcome = replay(
        ((e, "in.jsonl", f"line {n}") for n, e in enumerate(ordered[:200], 1)),
        pack,
        until=None,
        scale=Scale(workers=2, partitions=PARTITIONS, tmp=tmp_path),
        on_reject=print,
    )
    assert outcome.decided_in_order == 0
    assert json.dumps(outcome.stats.evaluated) == "200"
