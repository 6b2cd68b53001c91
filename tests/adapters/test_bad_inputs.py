"""The damaged-input corpus: a bad file costs its own bad records, never a finding elsewhere.

Every ``tests/fixtures/bad/*/cases.yaml`` names damaged files and the fate
their records must meet. Each is replayed beside ``anchor.jsonl``, a short
course whose flush raises one known ``LINE_FLUSH`` for patient ANCHOR.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pumpguard.cli import main

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad"
ANCHOR = BAD / "anchor.jsonl"
TALLY = ("records", "events", "warned", "rejected")


def _cases() -> list[Any]:
    found = []
    for manifest in sorted(BAD.glob("*/cases.yaml")):
        for case in yaml.safe_load(manifest.read_text(encoding="utf-8")) or []:
            found.append(
                pytest.param(manifest.parent, case, id=f"{manifest.parent.name}/{case['file']}")
            )
    return found


CASES = _cases()


def _summary(stderr: str) -> dict[str, Any]:
    lines = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    (done,) = [x for x in lines if x.get("event") == "replay.done"]
    return done


def test_the_corpus_has_cases_for_every_format_i_own():
    folders = {p.values[0].name for p in CASES}
    assert {"jsonl", "fhir", "csv"} <= folders


@pytest.mark.parametrize(("folder", "case"), CASES)
def test_a_bad_input_costs_only_its_own_records(
    folder: Path, case: dict[str, Any], tmp_path, capsys
):
    """No traceback, the documented exit, every record accounted for, the anchor still judged."""
    bad = folder / case["file"]
    case = {**case, **case.get("cli", {})}  # what replay reports, where it differs from the source
    out, rejects = tmp_path / "findings.jsonl", tmp_path / "rejects.jsonl"
    args = ["replay", str(bad), str(ANCHOR), "--out", str(out), "--rejects", str(rejects)]
    if case.get("config"):
        args += ["--config", str(folder / case["config"])]

    status = main(args)

    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert status == case["exit"]
    inputs = {i["file"]: i for i in _summary(err)["inputs"]}
    tally = {k: inputs[str(bad)][k] for k in TALLY}
    assert tally == {k: case[k] for k in TALLY}
    assert tally["records"] == tally["events"] + tally["warned"] + tally["rejected"]
    assert {k: inputs[str(ANCHOR)][k] for k in TALLY} == dict(zip(TALLY, (4, 4, 0, 0), strict=True))
    said = [json.loads(x) for x in rejects.read_text(encoding="utf-8").splitlines()]
    assert all(r["position"] and r["source"] == str(bad) for r in said)
    assert all(len(r["reason"]) < 600 for r in said)
    findings = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert any(f["code"] == "LINE_FLUSH" and f["patient_id"] == "ANCHOR" for f in findings)
