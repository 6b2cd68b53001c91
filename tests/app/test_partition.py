"""Partitioned replay (issue 12): the same bytes for any worker, partition count or cluster."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from pumpguard import pipeline
from pumpguard.cli import main
from pumpguard.engine.events import event_adapter
from pumpguard.engine.partition import partition_of
from pumpguard.engine.rejects import Reject
from pumpguard.partition import DaskUnavailable, Scale, replay
from pumpguard.simulations.montecarlo import generate_population


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drill population plus what replay must refuse or count once, in one file."""
    lines = generate_population(8, 0.6, 2026).lines
    first = json.loads(lines[0])
    other = next(json.loads(x) for x in lines if json.loads(x)["patient_id"] != first["patient_id"])
    clash = dict(other, event_id=first["event_id"])  # the same id for another patient
    extra = [lines[3], json.dumps(clash), "{not json", lines[10]]
    path = tmp_path_factory.mktemp("population") / "population.jsonl"
    path.write_text("\n".join([*lines[:50], *extra, *lines[50:]]) + "\n")
    return path


def _run(path: Path, pack: Any, tmp: Path, scale: Scale | None) -> tuple[str, str, dict[str, Any]]:
    """Findings, rejects and summary of one audit; ``scale=None``: the one-engine replay."""
    out, rej = io.StringIO(), io.StringIO()
    report = pipeline.RejectReport(rej)
    if scale is None:
        sources = pipeline.open_sources([path], None)
        result = pipeline._audit_in_memory(sources, pack, out, report, None, "jsonl")
    else:
        result = pipeline.audit([path], pack, out=out, rejects=report, scale=scale)
    summary = asdict(result.stats) | {"inputs": report.inputs, "errors": report.errors}
    return out.getvalue(), rej.getvalue(), summary


@pytest.fixture(scope="module")
def single(population: Path, pack: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return _run(population, pack, tmp_path_factory.mktemp("single"), None)


def test_the_baseline_has_findings_duplicates_and_conflicts(single):
    findings, rejects, summary = single
    assert len(findings.splitlines()) >= 5
    assert summary["duplicates"] == 2
    assert summary["conflicting"] == 2
    assert "different content" in rejects
    assert "not json" not in findings


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("partitions", [7, 64])
def test_any_worker_and_partition_count_gives_the_one_process_bytes(
    population, pack, tmp_path, single, workers, partitions
):
    scale = Scale(workers=workers, partitions=partitions, tmp=tmp_path)
    findings, rejects, summary = _run(population, pack, tmp_path, scale)
    assert findings == single[0]
    assert rejects == single[1]
    assert summary | {"spool_bytes": 0} == single[2] | {"spool_bytes": 0}


def test_a_dask_local_cluster_gives_the_one_process_bytes(population, pack, tmp_path, single):
    pytest.importorskip("distributed")
    scale = Scale(dask="local:2", partitions=7, tmp=tmp_path)
    assert _run(population, pack, tmp_path, scale)[:2] == single[:2]


def test_an_id_seen_for_two_patients_in_two_partitions_rejects_both(pack, tmp_path):
    a, b = (
        "pa",
        next(p for p in ("pb", "pc", "pd", "pe") if partition_of(p, 2) != partition_of("pa", 2)),
    )
    events = [
        event_adapter.validate_json(
            json.dumps(
                {
                    "event_id": "same",
                    "type": "patient.registered",
                    "ts": "2026-03-02T08:00:00Z",
                    "patient_id": pid,
                    "weight_kg": 70,
                    "indication": "relapsed_refractory",
                }
            )
        )
        for pid in (a, b)
    ]
    rejects: list[Reject] = []
    outcome = replay(
        ((e, "in.jsonl", f"line {n}") for n, e in enumerate(events, 1)),
        pack,
        until=None,
        scale=Scale(partitions=2, tmp=tmp_path),
        on_reject=rejects.append,
    )
    assert [r.position for r in rejects] == ["line 1", "line 2"]
    assert outcome.stats.conflicting == 2
    assert outcome.stats.evaluated == 0


def test_spool_files_are_removed_after_a_run_and_their_size_is_stated(population, pack, tmp_path):
    _, _, summary = _run(population, pack, tmp_path, Scale(partitions=7, tmp=tmp_path))
    assert summary["spool_bytes"] > population.stat().st_size / 2
    assert list(tmp_path.iterdir()) == []


def test_spool_files_are_removed_when_reading_fails(pack, tmp_path):
    def failing():
        yield from ()
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        replay(failing(), pack, until=None, scale=Scale(tmp=tmp_path), on_reject=print)
    assert list(tmp_path.iterdir()) == []


def test_dask_without_the_extra_is_a_usage_error_naming_it(monkeypatch, pack, tmp_path):
    import importlib

    real = importlib.import_module

    def no_distributed(name: str, *args: Any) -> Any:
        if name == "distributed":
            raise ImportError("No module named 'distributed'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_distributed)
    course = pipeline.bundled_demo_course()
    with pytest.raises(DaskUnavailable, match=r"pumpguard\[dask\]"):
        _run(course, pack, tmp_path, Scale(dask="local:2", tmp=tmp_path))
    assert issubclass(DaskUnavailable, pipeline.UsageError)


@pytest.mark.parametrize(
    "flags", [["--workers", "0"], ["--dask", "nowhere"], ["--workers", "2", "--dask", "local"]]
)
def test_bad_scale_flags_exit_2(flags, capsys):
    try:
        code = main(["replay", str(pipeline.bundled_demo_course()), *flags])
    except SystemExit as exc:  # argparse refuses some flags itself
        code = exc.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_the_spool_sort_and_time_ordered_give_one_order():
    import random

    from pumpguard.engine.ordering import instant_us, same_second_rank
    from pumpguard.engine.replay import SpoolIndex, time_ordered

    lines = generate_population(3, 0.5, 11).lines[:400]
    events = [event_adapter.validate_json(x) for x in lines]
    random.Random(3).shuffle(events)
    index = SpoolIndex()
    for i, e in enumerate(events):
        index.add(instant_us(e.ts), e.patient_id, same_second_rank(e.type), i)
    assert [events[i] for i in index.offsets_in_order()] == time_ordered(events)
