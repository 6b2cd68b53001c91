"""The journal benchmark runs (tiny sizes) and measures both modes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).parent.parent.parent / "benchmarks" / "journal_commit.py"


def test_benchmark_measures_group_commit_against_one_commit_per_message(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("journal_commit", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.bench(messages=40, producers=4, repeat=1, folder=tmp_path)
    assert results["per-msg"]["commits"] == 40  # the baseline: one fsync per message
    assert results["group"]["commits"] < 40
    assert all(r["rate"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in results.values())
