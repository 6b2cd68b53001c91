"""`pumpguard explain`, `rules check|matrix`, `convert`, replay sinks, and HL7 equivalence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pumpguard.cli import bundled_demo_course, main
from pumpguard.rules import default_pack

COURSE = bundled_demo_course()
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_explain_shows_why_a_deadline_finding_fired(capsys):
    assert main(["explain", str(COURSE), "--patient", "P-1001"]) == 0
    out = capsys.readouterr().out
    assert "REINITIATION_UNSUPERVISED" in out
    assert "opened at 2026-03-17T16:10:00Z by BLN-REINIT-01" in out
    assert "state.interruption_h=5.17" in out
    assert "P-1002" not in out


def test_explain_reports_the_near_miss_below_four_hours(capsys):
    main(["explain", str(SCENARIOS / "reinit_3h59_silent.jsonl")])
    out = capsys.readouterr().out
    assert "NEAR MISS" in out
    assert "Interruption of 3 h 59 min, below the 4 h threshold" in out
    assert "not met: state.interruption_h >= 4" in out


def test_explain_json_is_machine_readable(capsys):
    main(["explain", str(COURSE), "--json"])
    data = json.loads(capsys.readouterr().out)
    kinds = [item["kind"] for items in data.values() for item in items]
    assert kinds.count("finding") == 5
    assert set(data) == {"P-1001", "P-1002"}
    [near] = [i for i in data["P-1001"] if i["kind"] == "near_miss"]
    assert near["rule_id"] == "BLN-HOSP-RR-01"  # discharged on day 10: just after the window


def test_rules_check_accepts_the_bundled_pack_in_every_edition(capsys):
    assert main(["rules", "check", str(default_pack())]) == 0
    out = capsys.readouterr().out
    assert "edition seed" in out
    assert "edition label-2024" in out


def test_rules_check_names_file_and_line_of_a_mistake(tmp_path, capsys):
    pack = tmp_path / "pack"
    shutil.copytree(default_pack(), pack)
    text = (
        (pack / "dose.yaml")
        .read_text()
        .replace(
            "cond.fixed_band and cond.step_start_zone", "cond.fixed_band and cond.no_such_zone", 1
        )
    )
    (pack / "dose.yaml").write_text(text)
    assert main(["rules", "check", str(pack)]) == 2
    err = capsys.readouterr().err
    assert "dose.yaml:14: rule BLN-DOSE-01: unknown condition cond.no_such_zone" in err


def test_rules_matrix_traces_every_requirement_to_rules_and_tests(capsys):
    tests_dir = Path(__file__).resolve().parents[1]
    assert main(["rules", "matrix", "--tests", str(tests_dir)]) == 0
    out = capsys.readouterr().out
    assert "NONE" not in out
    assert out.count("  rules: ") == 18


def test_convert_writes_the_canonical_events_the_engine_sees(tmp_path):
    out = tmp_path / "events.jsonl"
    assert main(["convert", str(COURSE), "--out", str(out)]) == 0
    original = [json.loads(x) for x in COURSE.read_text().splitlines()]
    converted = [json.loads(x) for x in out.read_text().splitlines()]
    assert [e["event_id"] for e in converted] == [e["event_id"] for e in original]


def test_convert_missing_input_exits_two(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.hl7")]) == 2


@pytest.mark.parametrize(("sink", "marker"), [("fhir", '"resourceType"'), ("hl7-cr", "ORU^R40")])
def test_replay_delivers_findings_through_other_sinks(sink, marker, capsys):
    assert main(["replay", str(COURSE), "--sink", sink]) == 0
    assert marker in capsys.readouterr().out


def test_the_same_course_as_hl7_and_as_jsonl_gives_the_same_findings(tmp_path):
    """Pump and encounter events travel as HL7 v2 (PCD-10, ADT); the rest as JSONL."""
    from pumpguard.adapters.hl7v2 import Hl7Writer, UnsupportedEvent, frame
    from pumpguard.engine.events import event_adapter

    writers: dict[str, Hl7Writer] = {}
    messages: list[str] = []
    rest: list[str] = []
    carried = 0
    for line in COURSE.read_text().splitlines():
        event = event_adapter.validate_json(line)
        if event.type.startswith(("pump.", "encounter.")) and event.type not in (
            "pump.registered",
            "pump.flush",
        ):
            try:
                messages += writers.setdefault(event.patient_id, Hl7Writer()).render(event)
                carried += 1
                continue
            except UnsupportedEvent:
                pass
        rest.append(line)
    assert carried > 100
    (tmp_path / "pumps.hl7").write_text(frame(messages, "mllp"))
    (tmp_path / "rest.jsonl").write_text("\n".join(rest) + "\n")
    main(["replay", str(COURSE), "--out", str(tmp_path / "a.jsonl")])
    main(
        [
            "replay",
            str(tmp_path / "pumps.hl7"),
            str(tmp_path / "rest.jsonl"),
            "--out",
            str(tmp_path / "b.jsonl"),
        ]
    )

    def key(path: Path) -> list[tuple[str, str, str, str]]:
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        return [(f["ts"], f["patient_id"], f["code"], f["rule_id"]) for f in rows]

    assert key(tmp_path / "a.jsonl") == key(tmp_path / "b.jsonl")
    assert len(key(tmp_path / "a.jsonl")) == 5


def test_convert_out_naming_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    course = tmp_path / "course.jsonl"
    course.write_bytes(COURSE.read_bytes())
    assert main(["convert", str(course), "--out", str(course)]) == 2
    assert course.read_bytes() == COURSE.read_bytes()


def test_convert_refused_leaves_an_existing_output_byte_identical(tmp_path):
    out = tmp_path / "events.jsonl"
    out.write_bytes(b"kept\n")
    unknown = tmp_path / "notes.bin"
    unknown.write_bytes(b"\x00\x01")
    assert main(["convert", str(COURSE), str(unknown), "--out", str(out)]) == 2
    assert out.read_bytes() == b"kept\n"


def test_convert_goes_on_past_a_source_that_fails(tmp_path, monkeypatch, capsys):
    from pumpguard.adapters.hl7v2 import Hl7Source

    def explode(self):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(Hl7Source, "__iter__", explode)
    pumps = tmp_path / "pumps.hl7"
    pumps.write_bytes(b"MSH|^~\\&|A|B|C|D|202603020900||ACK|1|P|2.6\r")
    out = tmp_path / "events.jsonl"
    assert main(["convert", str(pumps), str(COURSE), "--out", str(out)]) == 3
    assert len(out.read_text().splitlines()) == len(COURSE.read_text().splitlines())
    err = capsys.readouterr().err
    (stopped,) = [json.loads(x) for x in err.splitlines() if '"reading stopped here' in x]
    assert (stopped["source"], stopped["position"]) == (str(pumps), "start of file")
    (done,) = [json.loads(x) for x in err.splitlines() if '"convert.done"' in x]
    assert [i["file"] for i in done["inputs"]] == [str(pumps), str(COURSE)]
    assert done["inputs"][1]["events"] == done["events"]


def test_rule_tests_manifest_names_every_rule_test_module_and_no_other():
    """rules matrix reads coverage from tests/rule_tests.yaml: it must match the files."""
    import yaml

    tests_dir = Path(__file__).resolve().parents[1]
    listed = yaml.safe_load((tests_dir / "rule_tests.yaml").read_text())
    modules = tests_dir.glob("rules/test_rule_*.py")
    assert sorted(listed) == sorted(str(p.relative_to(tests_dir)) for p in modules)
    assert all(isinstance(reqs, list) and reqs for reqs in listed.values())
