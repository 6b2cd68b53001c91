"""`pumpguard replay` as spec/cli.md says."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pumpguard.cli import bundled_demo_course, main

COURSE = bundled_demo_course()


def replay(*args: str | Path) -> int:
    return main(["replay", *map(str, args)])


def test_findings_go_to_stdout_and_nothing_else(capsys):
    assert replay(COURSE) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5
    assert all(json.loads(line)["code"] for line in out)


def test_same_input_twice_gives_byte_identical_findings(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    replay(COURSE, "--out", a)
    replay(COURSE, "--out", b)
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size > 0


def test_shuffled_lines_give_the_same_findings(tmp_path):
    lines = COURSE.read_text().splitlines(keepends=True)
    random.Random(7).shuffle(lines)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(lines))
    replay(COURSE, "--out", tmp_path / "a.jsonl")
    replay(shuffled, "--out", tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_several_inputs_are_one_stream(tmp_path):
    lines = COURSE.read_text().splitlines(keepends=True)
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_text("".join(lines[::2]))
    second.write_text("".join(lines[1::2]))
    replay(COURSE, "--out", tmp_path / "a.jsonl")
    replay(first, second, "--out", tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_malformed_lines_are_reported_and_the_rest_evaluated(tmp_path, capsys):
    good = COURSE.read_text().splitlines()
    bad = [
        "{not json",
        json.dumps({**json.loads(good[0]), "event_id": "x1", "ts": "2026-03-02T08:00:00"}),
        json.dumps({**json.loads(good[0]), "event_id": "x2", "weight_kg": -70}),
    ]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(bad[:1] + good[:100] + bad[1:] + good[100:]) + "\n")
    status = replay(mixed, "--out", tmp_path / "f.jsonl")
    assert status == 3
    rejects = [json.loads(x) for x in (tmp_path / "f.rejects.jsonl").read_text().splitlines()]
    assert [r["position"] for r in rejects] == ["line 1", "line 102", "line 103"]
    assert "not valid JSON" in rejects[0]["reason"]
    assert "no UTC offset" in rejects[1]["reason"]
    assert "weight_kg" in rejects[2]["reason"]
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 5
    assert "line 102" in capsys.readouterr().err


def test_identical_duplicate_counts_once(tmp_path):
    lines = COURSE.read_text().splitlines(keepends=True)
    dup = tmp_path / "dup.jsonl"
    dup.write_text("".join(lines + lines[:50]))
    assert replay(dup, "--out", tmp_path / "f.jsonl") == 0
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 5


def test_same_id_with_other_content_rejects_every_version(tmp_path):
    lines = COURSE.read_text().splitlines()
    flush = next(i for i, x in enumerate(lines) if '"pump.flush"' in x)
    changed = json.loads(lines[flush])
    changed["volume_ml"] = 99
    conflict = tmp_path / "conflict.jsonl"
    conflict.write_text("\n".join([*lines, json.dumps(changed)]) + "\n")
    assert replay(conflict, "--out", tmp_path / "f.jsonl") == 3
    rejects = (tmp_path / "f.rejects.jsonl").read_text()
    assert rejects.count("different content") == 2
    codes = [json.loads(x)["code"] for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert codes.count("LINE_FLUSH") == 1


def test_until_stops_the_clock(tmp_path, capsys):
    assert replay(COURSE, "--until", "2026-03-10T00:00:00Z") == 0
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["code"] for x in out] == ["HOSPITALIZATION_REQUIRED"]


def test_until_inside_a_window_raises_nothing_yet(capsys):
    """The restart at 16:10 on 03-17 has its window until 17:10; the log stops before."""
    replay(COURSE, "--until", "2026-03-17T17:09:59Z")
    assert "REINITIATION_UNSUPERVISED" not in capsys.readouterr().out


def test_fail_on_high_exits_four(capsys):
    assert replay(COURSE, "--fail-on", "high") == 4
    assert replay(COURSE, "--fail-on", "critical") == 4


def test_label_2024_edition_is_recorded(capsys):
    replay(COURSE, "--edition", "label-2024")
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["rule_pack"]["edition"] == "label-2024"
    assert first["rule_pack"]["name"] == "blincyto"


@pytest.mark.parametrize(
    "args",
    [
        ["replay"],
        ["replay", "missing.jsonl"],
        ["replay", str(COURSE), "--until", "2026-03-10T00:00:00"],
        ["replay", str(COURSE), "--edition", "label-1999"],
        ["replay", str(COURSE), "--fail-on", "severe"],
    ],
)
def test_usage_errors_and_unreadable_input_exit_two(args, capsys):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(args))
    assert info.value.code == 2
    assert capsys.readouterr().out == ""


def test_unknown_fields_are_warned_but_not_rejected(tmp_path, capsys):
    line = json.loads(COURSE.read_text().splitlines()[0])
    line["colour"] = "blue"
    f = tmp_path / "extra.jsonl"
    f.write_text(json.dumps(line) + "\n")
    assert replay(f) == 0
    assert "unknown field(s) ignored: colour" in capsys.readouterr().err


def test_finding_fields_follow_the_spec(capsys):
    replay(COURSE)
    f = json.loads(capsys.readouterr().out.splitlines()[0])
    for key in (
        "finding_id",
        "code",
        "rule_id",
        "severity",
        "patient_id",
        "ts",
        "message",
        "action",
        "evidence",
        "citation",
        "rule_pack",
    ):
        assert key in f
    assert set(f["rule_pack"]) >= {"name", "version", "sha256"}
    assert f["ts"].endswith("Z")


def test_demo_prints_a_table_and_the_findings_path(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "time (UTC)" in out
    assert "LINE_FLUSH" in out
    assert f"5 findings written to {tmp_path / 'findings.jsonl'}" in out


def test_bundled_demo_course_is_what_the_builder_makes():
    """The shipped example cannot drift from the code that documents it."""
    from pumpguard.simulations.demo import demo_events

    expected = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in demo_events())
    assert COURSE.read_text() == expected


# -- inputs and outputs (issue 9) ---------------------------------------------------

ANCHOR = Path(__file__).resolve().parents[1] / "fixtures" / "bad" / "anchor.jsonl"


def _codes(path: Path) -> list[str]:
    return [json.loads(x)["code"] for x in path.read_text().splitlines()]


def _summary(err: str) -> dict:
    (done,) = [json.loads(x) for x in err.splitlines() if '"replay.done"' in x]
    return done


def test_out_naming_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    course = tmp_path / "course.jsonl"
    course.write_bytes(COURSE.read_bytes())
    assert replay(course, "--out", course) == 2
    assert course.read_bytes() == COURSE.read_bytes()
    assert "is also an input" in capsys.readouterr().err


def test_rejects_naming_an_input_through_another_path_is_refused(tmp_path, capsys):
    course = tmp_path / "course.jsonl"
    course.write_bytes(COURSE.read_bytes())
    (tmp_path / "sub").mkdir()
    assert replay(course, "--rejects", tmp_path / "sub" / ".." / "course.jsonl") == 2
    assert course.read_bytes() == COURSE.read_bytes()


def test_out_and_rejects_naming_one_file_is_refused(tmp_path):
    same = tmp_path / "f.jsonl"
    assert replay(COURSE, "--out", same, "--rejects", same) == 2
    assert not same.exists()


def test_a_run_refused_after_outputs_were_opened_leaves_them_byte_identical(tmp_path):
    out = tmp_path / "f.jsonl"
    out.write_bytes(b"yesterday's findings\n")
    unknown = tmp_path / "notes.bin"
    unknown.write_bytes(b"\x00\x01 not any format")
    assert replay(COURSE, unknown, "--out", out) == 2
    assert out.read_bytes() == b"yesterday's findings\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl", "notes.bin"]


def test_a_run_failing_while_writing_findings_leaves_the_old_file_byte_identical(
    tmp_path, monkeypatch
):
    from pumpguard.adapters.jsonl import JsonlFindingSink
    from pumpguard.engine.errors import SinkError

    written = []

    def write_one_then_fail(self, finding):
        if written:
            raise SinkError("the alarm manager went away")
        written.append(finding)
        self._stream.write(finding.to_json() + "\n")

    monkeypatch.setattr(JsonlFindingSink, "write", write_one_then_fail)
    out = tmp_path / "f.jsonl"
    out.write_bytes(b"yesterday's findings\n")
    assert replay(COURSE, "--out", out) == 2
    assert out.read_bytes() == b"yesterday's findings\n"
    assert not (tmp_path / "f.rejects.jsonl").exists()


def test_completed_run_replaces_the_findings_file_keeping_its_permissions(tmp_path):
    out = tmp_path / "f.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    assert replay(COURSE, "--out", out) == 0
    assert len(_codes(out)) == 5
    assert out.stat().st_mode & 0o777 == 0o640


def test_dash_reads_standard_input(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(COURSE.read_bytes())))
    assert main(["replay", "-"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5
    assert _summary(captured.err)["inputs"][0]["file"] == "<stdin>"


def test_directory_input_is_reported_as_a_directory(tmp_path, capsys):
    assert replay(tmp_path, COURSE) == 2
    assert "is a directory" in capsys.readouterr().err


def test_named_pipe_input_is_reported_as_one_without_blocking(tmp_path, capsys):
    import os

    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    assert replay(fifo) == 2
    assert "named pipe" in capsys.readouterr().err


def test_out_in_a_missing_folder_is_reported_as_an_output_problem(tmp_path, capsys):
    assert replay(COURSE, "--out", tmp_path / "no" / "f.jsonl") == 2
    assert "cannot write output: findings file" in capsys.readouterr().err


def test_jsonl_named_txt_is_read_by_content(tmp_path, capsys):
    txt = tmp_path / "course.txt"
    txt.write_bytes(COURSE.read_bytes())
    assert replay(txt) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_summary_accounts_for_every_record_of_every_input(tmp_path, capsys):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(COURSE.read_text().splitlines()[0] + "\n{broken\n\n")
    replay(mixed, ANCHOR)
    inputs = _summary(capsys.readouterr().err)["inputs"]
    assert inputs == [
        {"file": str(mixed), "format": "jsonl", "records": 2, "events": 1, "warned": 0,
         "rejected": 1},
        {"file": str(ANCHOR), "format": "jsonl", "records": 4, "events": 4, "warned": 0,
         "rejected": 0},
    ]  # fmt: skip


def test_empty_hl7_file_is_a_reject_and_the_other_inputs_are_evaluated(tmp_path, capsys):
    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"")
    assert replay(empty, ANCHOR, "--out", tmp_path / "f.jsonl") == 3
    assert f"{empty}:line 1: error: empty file" in capsys.readouterr().err
    assert "LINE_FLUSH" in _codes(tmp_path / "f.jsonl")


def test_hl7_with_prose_before_the_first_msh_is_read_not_refused(tmp_path, capsys):
    capture = tmp_path / "capture.hl7"
    capture.write_bytes(
        b"Captured 2026-03-02 on ward 4\r\nMSH|^~\\&|A|B|C|D|202603020900||ACK|1|P|2.6\r"
    )
    assert replay(capture, ANCHOR, "--out", tmp_path / "f.jsonl") != 2
    assert str(capture) in capsys.readouterr().err
    assert "LINE_FLUSH" in _codes(tmp_path / "f.jsonl")


def test_a_source_that_fails_costs_the_rest_of_that_source_only(tmp_path, monkeypatch, capsys):
    """HL7 is read as a black box: whatever it raises, the other inputs are still judged."""
    from pumpguard.adapters.hl7v2 import Hl7Source

    def explode(self):
        self.position = "message 3 (line 9)"
        raise RuntimeError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(Hl7Source, "__iter__", explode)
    pumps = tmp_path / "pumps.hl7"
    pumps.write_bytes(b"MSH|^~\\&|A|B|C|D|202603020900||ACK|1|P|2.6\r")
    assert replay(pumps, ANCHOR, "--out", tmp_path / "f.jsonl") == 3
    err = capsys.readouterr().err
    assert f"{pumps}:message 3 (line 9): error: reading stopped here: RuntimeError: 'boom'" in err
    assert "Traceback" not in err
    assert _summary(err)["inputs"][0]["stopped_at"] == "message 3 (line 9)"
    assert "LINE_FLUSH" in _codes(tmp_path / "f.jsonl")


def test_adapter_config_that_does_not_load_is_a_usage_error(tmp_path, capsys):
    config = tmp_path / "feed.yaml"
    config.write_text("time_zone: Mars/Olympus\n")
    assert replay(COURSE, "--config", config) == 2
    assert "adapter config" in capsys.readouterr().err


def test_until_outside_the_representable_years_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        replay(COURSE, "--until", "9999-12-31T23:30:00-01:00")
    assert info.value.code == 2
    assert "outside the years 1 to 9999" in capsys.readouterr().err


def test_a_finding_at_the_last_representable_second_is_written(tmp_path, capsys):
    start = {
        "event_id": "s", "type": "pump.infusion_started", "ts": "9999-12-31T23:00:00Z",
        "patient_id": "p", "pump_id": "P", "drug": "blinatumomab", "rate_ml_h": 10,
    }  # fmt: skip
    flush = {**start, "event_id": "f", "type": "pump.flush", "ts": "9999-12-31T23:59:59Z"}
    del flush["drug"], flush["rate_ml_h"]
    flush["volume_ml"] = 5
    late = tmp_path / "late.jsonl"
    late.write_text(json.dumps(start) + "\n" + json.dumps(flush) + "\n")
    replay(late, "--out", tmp_path / "f.jsonl")
    assert "LINE_FLUSH" in _codes(tmp_path / "f.jsonl")


def test_out_dash_is_standard_output(capsys):
    assert replay(COURSE, "--out", "-") == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert not Path("-").exists()


def test_an_input_that_vanishes_before_it_is_read_is_a_reject_not_a_defect(
    tmp_path, monkeypatch, capsys
):
    from pumpguard.adapters.jsonl import JsonlSource

    gone = tmp_path / "gone.jsonl"
    gone.write_bytes(COURSE.read_bytes())
    opened = JsonlSource._open

    def vanish(self):
        if self.path == gone:
            gone.unlink()
        return opened(self)

    monkeypatch.setattr(JsonlSource, "_open", vanish)
    assert replay(gone, ANCHOR, "--out", tmp_path / "f.jsonl") == 3
    err = capsys.readouterr().err
    assert "reading stopped here: the input cannot be read (No such file or directory)" in err
    assert "defect" not in err
