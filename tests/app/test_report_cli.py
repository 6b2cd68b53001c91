"""`pumpguard report` and `replay --report`: one self-contained HTML file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pumpguard.adapters.jsonl import unchained
from pumpguard.cli import bundled_demo_course, main
from pumpguard.report_build import to_json_text

COURSE = bundled_demo_course()


@pytest.fixture(scope="module", name="replayed")
def _replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("report")
    out, report = d / "findings.jsonl", d / "report.html"
    assert main(["replay", str(COURSE), "--out", str(out), "--report", str(report)]) == 0
    return out, report


def _data(html: str) -> dict:
    m = re.search(r"<script type='application/json' id='pg-data'>(.*?)</script>", html, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_replay_report_writes_findings_seal_and_report(replayed):
    out, report = replayed
    assert out.with_name(out.name + ".seal").is_file()
    html = report.read_text(encoding="utf-8")
    assert len(_data(html)["findings"]) == len(out.read_text().splitlines()) == 5
    assert "sealed at this run (5 findings" in html


def test_report_loads_nothing_from_elsewhere(replayed):
    html = replayed[1].read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.I)
    assert "Plotly" in html  # the library itself is inside


def test_report_shows_the_denominators_and_compliance(replayed):
    html = replayed[1].read_text(encoding="utf-8")
    for text in (
        "patient-days on drug",
        "bags hung",
        "R-PREMED",
        "R-REINIT",
        "R-HOSP",
        "R-BAG-TIME",
        "R-FLUSH",
        "demo_course.jsonl",
        "u-chart",
        "p-chart",
    ):
        assert text in html
    assert len(_data(html)["spc"]) == 3


def test_report_reads_findings_without_chain_fields(replayed, tmp_path, capsys):
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(unchained(x) + "\n" for x in replayed[0].read_text().splitlines()))
    report = tmp_path / "r.html"
    assert main(["report", str(plain), "--events", str(COURSE), "-o", str(report)]) == 0
    html = report.read_text(encoding="utf-8")
    assert len(_data(html)["findings"]) == 5
    assert "carries no hash chain" in html


def test_report_of_an_altered_file_says_so(replayed, tmp_path):
    altered = tmp_path / "f.jsonl"
    altered.write_text(replayed[0].read_text().replace("Blinatumomab", "Blinatumomeb", 1))
    seal = replayed[0].with_name(replayed[0].name + ".seal")
    altered.with_name("f.jsonl.seal").write_bytes(seal.read_bytes())
    report = tmp_path / "r.html"
    main(["report", str(altered), "--events", str(COURSE), "-o", str(report)])
    assert "ALTERED: line 1 was changed" in report.read_text(encoding="utf-8")


def test_rejected_event_lines_are_counted_in_the_report(replayed, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(COURSE.read_text() + "{not json\n")
    report = tmp_path / "r.html"
    assert main(["report", str(replayed[0]), "--events", str(events), "-o", str(report)]) == 0
    html = report.read_text(encoding="utf-8")
    assert "Rejects (1)" in html
    assert "line 245" in html


def test_a_message_cannot_close_the_data_script_early():
    text = to_json_text({"m": "</script><script>alert(1)</script> <!--"})
    assert "</" not in text
    assert "<!--" not in text
    assert json.loads(text) == {"m": "</script><script>alert(1)</script> <!--"}


def test_report_refuses_to_overwrite_an_input(replayed):
    assert main(["report", str(replayed[0]), "--events", str(COURSE), "-o", str(COURSE)]) == 2
