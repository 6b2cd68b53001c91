"""Requirement scenarios: canonical JSONL files replayed through `pumpguard replay`.

Each file is a clean course except for what it tests, so its findings are
known exactly (``scenarios/expected.yaml``). Every requirement has a case that
fires, one that must stay silent, and the boundary.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pumpguard.engine.pack import load_pack
from pumpguard.pipeline import RejectReport, audit
from pumpguard.rules import default_pack

HERE = Path(__file__).resolve().parents[1] / "scenarios"
EXPECTED: dict[str, dict] = yaml.safe_load((HERE / "expected.yaml").read_text())
REQUIREMENTS = [
    "R-FLUSH",
    "R-BAG-TIME",
    "R-BAG-RATE",
    "R-BAG-WHO",
    "R-BAG-PRESERV",
    "R-PUMP",
    "R-REINIT",
    "R-HOSP",
    "R-CYCLE-START",
    "R-DOSE",
    "R-CYCLE",
    "R-COURSE",
    "R-INTERRUPT",
    "R-PREMED",
    "R-REACT",
    "R-HOLD",
    "R-STOP",
    "R-VISIBILITY",
]  # the requirement table of spec/blincyto.md


@pytest.fixture(scope="module", name="packs")
def _packs():
    return {e: load_pack(default_pack(), edition=e) for e in ("seed", "label-2024")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_raises_exactly_its_findings(name, packs):
    spec = EXPECTED[name]
    pack = packs[spec["edition"]]
    result = audit([HERE / f"{name}.jsonl"], pack, out=io.StringIO(), rejects=RejectReport(None))
    assert result.rejects.errors == 0
    assert result.engine_errors == 0
    assert [f.code for f in result.findings] == spec["codes"]


def test_every_requirement_has_a_firing_and_a_silent_scenario():
    for req in REQUIREMENTS:
        cases = [s for s in EXPECTED.values() if s["requirement"] == req]
        assert any(c["codes"] for c in cases), f"{req}: no scenario that fires"
        assert len(cases) >= 3, f"{req}: needs fires, silent and boundary cases"


def test_the_pack_encodes_every_requirement_of_the_spec(packs):
    pack = packs["seed"]
    assert sorted(pack.spec.requirements) == sorted(REQUIREMENTS)
    covered = {r.spec.requirement for r in pack.rules}
    assert covered == set(REQUIREMENTS)


def test_every_code_of_the_spec_can_be_raised():
    spec_codes = {
        "LINE_FLUSH",
        "RATE_MISMATCH",
        "DOSE_MISMATCH",
        "UNSUITABLE_PUMP",
        "RESTART_AFTER_DISCONTINUATION",
        "BAG_OVERDUE",
        "REINITIATION_UNSUPERVISED",
        "PREMEDICATION_MISSING",
        "HOSPITALIZATION_REQUIRED",
        "CYCLE_START_UNSUPERVISED",
        "NEW_CYCLE_REQUIRED",
        "TREATMENT_FREE_INTERVAL_SHORT",
        "MAX_CYCLES_EXCEEDED",
        "RESTART_DURING_HOLD",
        "SEVERE_REACTION",
        "CYCLE_TOO_LONG",
        "BAG_CHANGE_UNQUALIFIED",
        "DELIVERY_STATUS_UNKNOWN",
        "INTERRUPTION_WARNING",
    }
    pack = load_pack(default_pack())
    raised = {a.raise_.code for r in pack.rules for a in r.actions if a.raise_}
    assert spec_codes <= raised


def test_scenario_files_are_what_the_builder_writes(tmp_path):
    """The committed JSONL cannot drift from the script that documents it."""
    import shutil

    copy = tmp_path / "scenarios"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("*.jsonl", "expected.yaml"))
    subprocess.run([sys.executable, str(copy / "build.py")], check=True)
    for f in HERE.glob("*.jsonl"):
        assert (copy / f.name).read_bytes() == f.read_bytes(), f.name
    assert (copy / "expected.yaml").read_text() == (HERE / "expected.yaml").read_text()


def test_scenarios_are_canonical_jsonl():
    for f in HERE.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            assert json.loads(line)["type"]
