"""The progress display: seen on a terminal, absent from pipes and with --quiet."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pumpguard.pipeline import bundled_demo_course

COURSE = bundled_demo_course()
DEADLINE_S = 120
BAR = "\u2501"  # the heavy line rich draws its bars with


def _replay_on_pty(*flags: str, out: Path, command: str = "replay") -> tuple[int, str]:
    """Run a command with standard error on a pseudo-terminal; what the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpguard", command, str(COURSE), "--out", str(out), *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=os.environ | {"COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(slave)
    shown = bytearray()
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, shown.decode("utf-8", "replace")


def test_replay_on_a_terminal_shows_each_phase(tmp_path):
    code, shown = _replay_on_pty(out=tmp_path / "f.jsonl")
    assert code == 0
    for phase in ("read", "sort", "evaluate", "worker main"):
        assert phase in shown
    assert "findings" in shown
    assert BAR in shown


def test_convert_on_a_terminal_shows_its_count(tmp_path):
    code, shown = _replay_on_pty(out=tmp_path / "c.jsonl", command="convert")
    assert code == 0
    assert "convert" in shown
    assert BAR in shown


def test_quiet_turns_the_display_off_on_a_terminal(tmp_path):
    code, shown = _replay_on_pty("--quiet", out=tmp_path / "f.jsonl")
    assert code == 0
    assert "worker main" not in shown
    assert BAR not in shown
    assert "replay.done" in shown  # the summary line is still there


def test_replay_into_a_pipe_shows_no_progress(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pumpguard", "replay", str(COURSE), "--out", str(tmp_path / "f")],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert proc.returncode == 0
    assert "worker main" not in proc.stderr
    assert BAR not in proc.stderr
    assert [json.loads(line)["event"] for line in proc.stderr.splitlines()] == [
        "replay.done",
        "replay.resources",
    ]


@pytest.mark.parametrize("quiet", [False, True])
def test_for_terminal_shows_nothing_off_a_terminal(quiet):
    from io import StringIO

    from pumpguard.progress import for_terminal

    assert not for_terminal(quiet, StringIO()).enabled
