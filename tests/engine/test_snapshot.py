"""Engine state as a value: a snapshot or a patient's session carries on exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pumpguard.engine.clock import ManualClock
from pumpguard.engine.core import Engine
from pumpguard.engine.events import Event, event_adapter
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.replay import drive, time_ordered
from pumpguard.engine.snapshot import CODE_VERSION, EngineSnapshot, PatientSession, dumps, loads

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.jsonl"))


def _events(path: Path) -> list[Event]:
    lines = path.read_text().splitlines()
    return time_ordered(event_adapter.validate_json(line) for line in lines if line.strip())


def _jsonl(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [f.to_json() for f in findings]


@pytest.mark.parametrize("copy", [True, False], ids=["copied", "adopted"])
@pytest.mark.parametrize("path", SCENARIOS[::5], ids=lambda p: p.stem)
def test_snapshot_bytes_restored_into_a_new_engine_give_the_uninterrupted_findings(
    pack: CompiledPack, path: Path, copy: bool
) -> None:
    events = _events(path)
    whole = _jsonl(list(drive(Engine(pack), events)))
    cut = len(events) // 2
    first = Engine(pack)
    before = [f.to_json() for e in events[:cut] for f in first.submit(e)]
    blob = dumps(first.snapshot(copy=copy))  # copy=False: the bytes are the copy
    second = Engine(pack)
    snap = loads(blob)
    assert isinstance(snap, EngineSnapshot)
    second.restore(snap, copy=copy)
    end = max(e.ts.timestamp() for e in events)
    after = _jsonl(list(drive(second, events[cut:], end=end)))
    assert before + after == whole


def test_an_exported_patient_session_reimported_replaces_what_came_after(
    pack: CompiledPack,
) -> None:
    events = _events(next(p for p in SCENARIOS if "reinit" in p.stem))
    pid = events[0].patient_id
    engine = Engine(pack, ManualClock(mode="live"))
    cut = len(events) // 2
    for e in events[:cut]:
        engine.submit(e)
    session = engine.export_patient(pid)
    assert isinstance(session, PatientSession)
    rest_first = _jsonl([f for e in events[cut:] for f in engine.submit(e)])
    engine.import_patient(session)
    engine.watermark = events[cut - 1].ts.timestamp()
    rest_again = _jsonl([f for e in events[cut:] for f in engine.submit(e)])
    assert rest_again == rest_first


def test_a_session_is_a_copy_that_later_events_do_not_change(pack: CompiledPack) -> None:
    events = _events(SCENARIOS[0])
    engine = Engine(pack)
    engine.submit(events[0])
    session = engine.export_patient(events[0].patient_id)
    assert session is not None
    before = dumps(session)
    for e in events[1:]:
        engine.submit(e)
    assert dumps(session) == before


def test_dropping_a_patient_cancels_its_deadlines(pack: CompiledPack) -> None:
    events = _events(next(p for p in SCENARIOS if "reinit" in p.stem))
    engine = Engine(pack)
    for e in events:
        engine.submit(e)
    pid = events[0].patient_id
    engine.drop_patient(pid)
    assert engine.export_patient(pid) is None
    assert engine.open_deadlines == 0


def test_code_version_is_a_sha256_of_the_engine_sources() -> None:
    assert len(CODE_VERSION) == 64
    int(CODE_VERSION, 16)
