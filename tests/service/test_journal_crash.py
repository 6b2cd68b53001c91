"""kill -9 at a random moment: every acknowledged message is in the journal exactly once."""

from __future__ import annotations

import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import asyncio, sys
from pumpguard.engine.events import parse_event
from pumpguard.service.journal import Inbound, Journal

path, run, resend = sys.argv[1], sys.argv[2], sys.argv[3:]

def message(key):
    event = parse_event({"event_id": key, "type": "pump.infusion_started",
                         "ts": "2026-03-02T08:00:00Z", "patient_id": "p1", "pump_id": "P1",
                         "drug": "blinatumomab", "rate_ml_h": 10})
    return Inbound("mllp", "127.0.0.1:1", key.encode(), 1000.0, key, (event,), "accepted", None)

async def producer(journal, connection):
    n = 0
    while True:  # until killed
        key = f"{run}-{connection}-{n}"
        appended = await journal.append(message(key))
        print("ack", key, appended.message_seq, flush=True)
        n += 1

async def main():
    journal = Journal(path)
    for key in resend:  # sent again after the crash, as a sender whose ACK was lost would
        appended = await journal.append(message(key))
        print("dup", key, appended.duplicate, flush=True)
    await asyncio.gather(*(producer(journal, c) for c in range(4)))

asyncio.run(main())
"""

ROUNDS = 3
DEADLINE_S = 60.0


def run_and_kill(
    script: Path, db: Path, run: str, resend: list[str], acks_before_kill: int
) -> list[str]:
    """Start the child, read its lines until enough acks, SIGKILL it; every line it printed."""
    child = subprocess.Popen(
        [sys.executable, str(script), str(db), run, *resend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    lines: list[str] = []
    buffer = b""
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while sum(line.startswith("ack") for line in lines) < acks_before_kill:
            assert time.monotonic() < deadline, "child too slow"
            if not selector.select(timeout=1.0):
                assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            assert chunk, child.stderr.read().decode()  # type: ignore[union-attr]
            buffer += chunk
            *done, buffer = buffer.split(b"\n")
            lines.extend(d.decode() for d in done)
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=DEADLINE_S)
    finally:
        selector.close()
        if child.poll() is None:
            child.kill()
            child.wait()
    # lines printed before the kill were acknowledged (a torn last line was not)
    *done, _torn = (buffer + rest).split(b"\n")
    lines.extend(d.decode() for d in done)
    return lines


def test_every_acknowledged_message_survives_sigkill_exactly_once(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "journal.db"
    rng = random.Random(11)
    acked: list[str] = []
    for run in range(ROUNDS):
        resend = rng.sample(acked, min(5, len(acked)))
        lines = run_and_kill(script, db, f"r{run}", resend, rng.randint(20, 200))
        dups = [line.split() for line in lines if line.startswith("dup")]
        assert [(key, flag) for _, key, flag in dups] == [(key, "True") for key in resend]
        acked.extend(line.split()[1] for line in lines if line.startswith("ack"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT dedupe_key, count(*) FROM messages GROUP BY 1"))
        events = dict(conn.execute("SELECT event_id, count(*) FROM events GROUP BY 1"))
    assert len(acked) == len(set(acked)) >= ROUNDS * 20
    assert all(stored.get(key) == 1 for key in acked)
    assert all(events.get(key) == 1 for key in acked)
