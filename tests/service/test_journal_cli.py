"""`pumpguard journal stats|export|remap`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pumpguard.adapters.hl7v2 import split_messages
from pumpguard.adapters.hl7v2.framing import RawMessage
from pumpguard.cli import bundled_demo_course, main
from pumpguard.cmd_journal import map_hl7
from pumpguard.engine.events import parse_event
from pumpguard.service.journal import Inbound, Journal

FIXTURES = Path(__file__).parent.parent / "fixtures"
FOUR_PUMPS = FIXTURES / "bbraun" / "four_pumps.hl7"  # five PCD-10 messages, no patient named
BINDINGS = FIXTURES / "bbraun" / "bindings.yaml"


def journal_hl7_file(journal: Journal, path: Path) -> list[str]:
    """Each message of an HL7 file journaled as the service would, mapped with no config."""
    outcomes = []
    for n, item in enumerate(split_messages(path.read_bytes())):
        if not isinstance(item, RawMessage):
            continue  # a note between messages in the capture
        raw = b"\r".join(item.segments) + b"\r"
        msh = item.segments[0].decode().split("|")
        events, outcome, reason = map_hl7(raw, None, path.name)
        key = f"{msh[2]}|{msh[3]}|{msh[9]}"
        journal.append_wait(
            Inbound("mllp", "127.0.0.1:1", raw, 1000.0 + n, key, events, outcome, reason)
        )
        outcomes.append(outcome)
    return outcomes


def journal_jsonl_file(journal: Journal, path: Path) -> None:
    for n, line in enumerate(path.read_bytes().splitlines()):
        event = parse_event(line)
        key = f"event:{event.event_id}"
        journal.append_wait(
            Inbound("file", path.name, line, 1000.0 + n, key, (event,), "accepted", None)
        )
        if n % 50 == 0:
            journal.append_tick(1000.0 + n)


def test_export_replays_to_the_same_findings_as_the_original_file(tmp_path: Path) -> None:
    course = bundled_demo_course()
    db = tmp_path / "journal.db"
    with Journal(db) as journal:
        journal_jsonl_file(journal, course)
    exported = tmp_path / "events.jsonl"
    assert main(["journal", "export", "--journal", str(db), "-o", str(exported)]) == 0
    assert len(exported.read_text().splitlines()) == len(course.read_text().splitlines())
    assert main(["replay", str(course), "--out", str(tmp_path / "a.jsonl")]) == 0
    assert main(["replay", str(exported), "--out", str(tmp_path / "b.jsonl")]) == 0
    findings = (tmp_path / "a.jsonl").read_bytes()
    assert findings
    assert (tmp_path / "b.jsonl").read_bytes() == findings


def test_unbound_pump_rejects_become_events_once_the_binding_is_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "journal.db"
    with Journal(db) as journal:
        assert journal_hl7_file(journal, FOUR_PUMPS) == ["rejected"] * 5
    remap = ["journal", "remap", "--journal", str(db), "--json"]
    assert main(remap) == 3  # the config still binds no pump: still rejected, nothing written
    assert json.loads(capsys.readouterr().out)["still_rejected"] == 5
    assert main([*remap, "--config", str(BINDINGS)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["became_events"], summary["still_rejected"]) == (5, 0)
    with Journal(db) as journal:
        stats = journal.stats()
        patients = {e.patient_id for i in journal.inputs_after(0) for e in i.events}
        history = journal.message_history(1)
    assert stats.by_outcome == {"accepted": 5}
    assert stats.remapped == 5
    assert patients == {"pt-101", "pt-102", "pt-201", "pt-202"}
    assert [(h.via, h.outcome) for h in history] == [
        ("received", "rejected"),
        ("remap", "accepted"),
    ]


def test_dry_run_remap_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "journal.db"
    with Journal(db) as journal:
        journal_hl7_file(journal, FOUR_PUMPS)
    args = ["journal", "remap", "--journal", str(db), "--config", str(BINDINGS), "--dry-run"]
    assert main(args) == 0
    assert "5 would become" in capsys.readouterr().out
    with Journal(db) as journal:
        assert journal.stats().by_outcome == {"rejected": 5}


def test_stats_counts_messages_inputs_and_backlog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "journal.db"
    with Journal(db) as journal:
        journal_hl7_file(journal, FOUR_PUMPS)
        journal.append_tick(5000.0)
    assert main(["journal", "stats", "--journal", str(db), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["messages"], stats["by_outcome"], stats["ticks"]) == (5, {"rejected": 5}, 1)
    assert main(["journal", "stats", "--journal", str(db)]) == 0
    assert "rejected 5" in capsys.readouterr().out


def test_stats_of_a_missing_journal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "stats", "--journal", str(tmp_path / "absent.db")]) == 2
    assert "no journal at" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()  # never made by looking


def test_a_file_that_is_not_a_journal_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("not a database at all, just some text that is long enough " * 20)
    assert main(["journal", "stats", "--journal", str(other)]) == 2
    assert "not a readable SQLite file" in capsys.readouterr().err
