"""`pumpguard compare`: the same history under two site files, packs or editions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pumpguard.cli import bundled_demo_course, main
from pumpguard.compare import compare_findings
from pumpguard.engine.findings import Finding, RulePackRef

COURSE = bundled_demo_course()


def _site(tmp_path: Path, hours: float) -> Path:
    path = tmp_path / f"premed-{hours:g}h.yaml"
    path.write_text(f"site: premed-{hours:g}h\nparameters:\n  premedication_window_h: {hours}\n")
    return path


@pytest.fixture(name="window")
def _window(tmp_path: Path) -> dict:
    """The demo course with the premedication window at 1 h against 4 h, as JSON."""
    out = tmp_path / "cmp.json"
    status = main(
        [
            "compare",
            str(COURSE),
            "--site",
            str(_site(tmp_path, 1)),
            "--against",
            "--site",
            str(_site(tmp_path, 4)),
            "--json",
            str(out),
        ]
    )
    assert status == 1
    return json.loads(out.read_text())


def test_a_shorter_premedication_window_adds_a_finding_at_the_step_up(window):
    gone = [c for c in window["changes"] if c["kind"] == "disappeared"]
    assert [(c["patient_id"], c["code"], c["a"]["ts"]) for c in gone] == [
        ("P-1001", "PREMEDICATION_MISSING", "2026-03-09T08:35:00Z")
    ]
    assert "previous 1 h" in gone[0]["a"]["message"]


def test_findings_raised_under_both_windows_are_changed_not_new(window):
    changed = [c for c in window["changes"] if c["kind"] == "changed"]
    assert [c["code"] for c in changed] == ["PREMEDICATION_MISSING"]
    assert "previous 1 h" in changed[0]["a"]["message"]
    assert "previous 4 h" in changed[0]["b"]["message"]
    assert window["by_code"]["LINE_FLUSH"] == [0, 0, 0, 2]
    assert window["by_patient"] == {"P-1001": [0, 1, 1]}


def test_same_pack_twice_changes_nothing(capsys):
    assert main(["compare", str(COURSE), "--against", "--edition", "seed"]) == 0
    assert "no finding appears, disappears or changes" in capsys.readouterr().out


def test_compare_writes_the_what_if_into_the_report(tmp_path):
    report = tmp_path / "whatif.html"
    main(
        [
            "compare",
            str(COURSE),
            "--site",
            str(_site(tmp_path, 1)),
            "--against",
            "--site",
            str(_site(tmp_path, 4)),
            "-o",
            str(report),
        ]
    )
    html = report.read_text(encoding="utf-8")
    assert "What-if: blincyto 0.1.0 seed site premed-1h against" in html
    assert "chart-compare" in html
    assert "2026-03-09T08:35:00Z" in html


def _finding(
    code: str, ts: str, message: str = "m", evidence: tuple[str, ...] = ("e1",)
) -> Finding:
    return Finding(
        finding_id="F-" + ts,
        code=code,
        rule_id="R1",
        severity="high",
        patient_id="p1",
        ts=ts,
        message=message,
        action="a",
        evidence=list(evidence),
        citation="c",
        requirement="R-X",
        rule_pack=RulePackRef(name="n", version="1", sha256="s", edition="seed"),
    )


def test_a_finding_at_another_time_on_the_same_evidence_is_changed():
    a = [_finding("BAG_OVERDUE", "2026-03-02T10:00:00Z")]
    b = [
        _finding("BAG_OVERDUE", "2026-03-02T11:00:00Z"),
        _finding("LINE_FLUSH", "2026-03-03T10:00:00Z", evidence=("e2",)),
    ]
    c = compare_findings(a, b)
    assert [(ch.kind, ch.code, ch.what) for ch in c.changes] == [
        ("changed", "BAG_OVERDUE", "ts"),
        ("appeared", "LINE_FLUSH", ""),
    ]
