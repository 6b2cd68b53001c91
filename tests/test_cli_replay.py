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
