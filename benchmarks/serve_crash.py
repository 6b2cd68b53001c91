"""Crash drill for ``pumpguard serve``: PCD messages over several connections, ``kill -9`` at random.

    python benchmarks/serve_crash.py --messages 10000 --connections 4 --kills 5

A drill population is written as HL7 (PCD-01/PCD-10/PCD-04 and ADT), split by
patient over the connections (each patient's messages stay in order on one), and
sent to a real ``pumpguard serve`` process. At random moments the process is
killed with SIGKILL and started again; each client reconnects and resends the
message it had no ACK for. At the end the service is stopped with SIGTERM and
the run is judged:

- every acknowledged message is in the journal exactly once;
- the findings the JSONL sink received, deduplicated by ``finding_id`` and less
  the withdrawn, are those of ``pumpguard replay`` on the same messages (ids and
  content but ``late``; live-only codes aside);
- the sink saw every finding at least once (how many twice is printed).

The baseline printed beside it is the same messages through the same service
with no kill. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pumpguard.adapters.hl7v2 import Hl7Writer, UnsupportedEvent
from pumpguard.adapters.hl7v2.ack import read_ack
from pumpguard.adapters.mllp import MllpClient, MllpError
from pumpguard.engine.events import event_adapter
from pumpguard.simulations.montecarlo import generate_population

LIVE_ONLY = {"INTERRUPTION_WARNING"}


@dataclass
class Feed:
    """One connection's messages, in order, and which were acknowledged."""

    messages: list[bytes]
    acked: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    resent: int = 0


def make_messages(count: int, seed: int) -> list[tuple[str, bytes]]:
    """(patient, message) pairs from a drill population, in time order, at least ``count``."""
    patients = max(2, count // 60)
    while True:
        gen = generate_population(patients, 0.3, seed=seed)
        writer = Hl7Writer()
        out: list[tuple[str, bytes]] = []
        for line in gen.lines:
            e = event_adapter.validate_json(line)
            try:
                rendered = writer.render(e)
            except UnsupportedEvent:
                continue
            out.extend((e.patient_id, m.encode()) for m in rendered)
        if len(out) >= count or patients > 5000:
            return _cut(out, count)
        patients = int(patients * 1.5) + 1


def _cut(messages: list[tuple[str, bytes]], count: int) -> list[tuple[str, bytes]]:
    """About ``count`` messages, whole patients only (a course cut in half proves nothing)."""
    started = {p for p, _ in messages[:count]}
    return [(p, m) for i, (p, m) in enumerate(messages) if i < count or p in started][
        : int(count * 1.2)
    ]


def split(messages: list[tuple[str, bytes]], connections: int) -> list[Feed]:
    pumps = sorted({p for p, _ in messages})
    where = {p: i % connections for i, p in enumerate(pumps)}
    feeds = [Feed([]) for _ in range(connections)]
    for pump, m in messages:
        feeds[where[pump]].messages.append(m)
    return feeds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``pumpguard serve`` child process on a fixed port and journal."""

    def __init__(self, workdir: Path, port: int, engine: str = "thread") -> None:
        self.workdir = workdir
        self.port = port
        self.config = workdir / "serve.yaml"
        self.config.write_text(
            "journal: journal.sqlite\n"
            f"clock: events\nengine: {engine}\n"
            f"mllp: {{host: 127.0.0.1, port: {port}}}\n"
            "http: null\n"
            "sinks:\n  - {name: test, type: jsonl, path: sink.jsonl}\n"
            "snapshot_every_inputs: 500\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.workdir / f"serve-{self.starts}.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pumpguard", "serve", "--config", str(self.config)],
                cwd=self.workdir,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    async def ready(self, timeout_s: float = 180.0) -> float:
        """Seconds until the MLLP port accepts."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return time.perf_counter() - t0
            except OSError:
                await asyncio.sleep(0.02)
        raise TimeoutError("server did not come up")


async def send_feed(feed: Feed, server: Server, up: asyncio.Event, progress: list[int]) -> None:
    """Send every message of one feed; after a failure, wait for the server and resend."""
    i = 0
    client: MllpClient | None = None
    while i < len(feed.messages):
        try:
            if client is None:
                await up.wait()
                client = MllpClient("127.0.0.1", server.port, timeout_s=30)
                await client.connect()
            reply = await client.send(feed.messages[i])
        except (TimeoutError, MllpError, OSError):
            feed.resent += 1
            if client is not None:
                await client.close()
            client = None
            await asyncio.sleep(0.05)
            continue
        summary = read_ack(reply)  # AE/AR too: an answer, and the message journaled as refused
        feed.acked.append(summary.control_id)
        feed.codes[summary.code] = feed.codes.get(summary.code, 0) + 1
        progress[0] += 1
        i += 1
    if client is not None:
        await client.close()


async def drive(feeds: list[Feed], server: Server, kills: int, seed: int) -> list[float]:
    """Run the feeds; kill and restart the server at ``kills`` random moments."""
    total = sum(len(f.messages) for f in feeds)
    rng = random.Random(seed)
    moments = sorted(rng.sample(range(max(1, total // 20), max(2, total * 9 // 10)), kills))
    progress = [0]
    up = asyncio.Event()
    server.start()
    await server.ready()
    up.set()
    restarts: list[float] = []
    tasks = [asyncio.create_task(send_feed(f, server, up, progress)) for f in feeds]
    for moment in moments:
        while progress[0] < moment and not all(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        up.clear()
        server.kill()
        server.start()
        restarts.append(await server.ready())
        up.set()
    await asyncio.gather(*tasks)
    return restarts


def journal_counts(path: Path) -> dict[str, int]:
    """How many stored messages each dedupe key has."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT dedupe_key, count(*) FROM messages GROUP BY dedupe_key")
        return {str(k): int(n) for k, n in rows}


def sink_findings(path: Path) -> tuple[dict[str, dict[str, object]], set[str], int]:
    """Findings by id, withdrawn ids, and how many lines were repeats (at-least-once)."""
    found: dict[str, dict[str, object]] = {}
    withdrawn: set[str] = set()
    repeats = 0
    seen: set[str] = set()
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        key = rec.get("finding_id") or rec.get("withdrawal_id")
        if key in seen:
            repeats += 1
            continue
        seen.add(str(key))
        if "withdraws" in rec:
            withdrawn.add(str(rec["withdraws"]))
        else:
            found[str(rec["finding_id"])] = rec
    return {k: v for k, v in found.items() if k not in withdrawn}, withdrawn, repeats


def replay_findings(
    workdir: Path, messages: list[tuple[str, bytes]]
) -> dict[str, dict[str, object]]:
    hl7 = workdir / "all.hl7"
    hl7.write_bytes(b"".join(b"\x0b" + m + b"\x1c\r" for _, m in messages))
    out = workdir / "replay.jsonl"
    subprocess.run(
        [sys.executable, "-m", "pumpguard", "replay", str(hl7), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return {r["finding_id"]: r for r in map(json.loads, out.read_text().splitlines())}


def _comparable(rec: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in rec.items() if k not in ("late", "prev_sha256", "seq")}


def run(
    messages: int, connections: int, kills: int, seed: int, engine: str = "thread"
) -> dict[str, object]:
    """One crash drill; returns its figures and verdicts."""
    pairs = make_messages(messages, seed)
    keep = os.environ.get("PUMPGUARD_CRASH_KEEP")
    with tempfile.TemporaryDirectory(prefix="pumpguard-crash-") as tmp:
        workdir = Path(keep) / f"kills-{kills}" if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        server = Server(workdir, free_port(), engine)
        feeds = split(pairs, connections)
        t0 = time.perf_counter()
        restarts = asyncio.run(drive(feeds, server, kills, seed))
        code = server.terminate()
        elapsed = time.perf_counter() - t0
        counts = journal_counts(workdir / "journal.sqlite")
        acked = [c for f in feeds for c in f.acked]
        sent_keys = {k.rsplit("|", 1)[-1]: n for k, n in counts.items()}
        once = all(sent_keys.get(c) == 1 for c in acked)
        live, withdrawn, repeats = sink_findings(workdir / "sink.jsonl")
        want = replay_findings(workdir, pairs)
        live_cmp = {k: _comparable(v) for k, v in live.items() if v["code"] not in LIVE_ONLY}
        want_cmp = {k: _comparable(v) for k, v in want.items()}
        return {
            "messages": len(pairs),
            "connections": connections,
            "kills": kills,
            "acknowledged": len(acked),
            "answers": _merged([f.codes for f in feeds]),
            "resent": sum(f.resent for f in feeds),
            "journal_exactly_once": once,
            "findings": len(want_cmp),
            "findings_equal_replay": live_cmp == want_cmp,
            "missing": [
                (k, want_cmp[k]["code"], want_cmp[k]["ts"])
                for k in sorted(set(want_cmp) - set(live_cmp))[:5]
            ],
            "extra": sorted(set(live_cmp) - set(want_cmp))[:5],
            "withdrawn": len(withdrawn),
            "sink_repeats": repeats,
            "restart_to_ready_s": [round(r, 3) for r in restarts],
            "sigterm_exit": code,
            "seconds": round(elapsed, 1),
        }


def _merged(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, n in c.items():
            out[k] = out.get(k, 0) + n
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    base = run(args.messages, args.connections, 0, args.seed)
    crash = run(args.messages, args.connections, args.kills, args.seed)
    for name, r in (("baseline (no kill)", base), (f"{args.kills} x kill -9", crash)):
        print(f"{name}: " + json.dumps(r))
    ok = all(
        r["journal_exactly_once"] and r["findings_equal_replay"] and r["sigterm_exit"] == 0
        for r in (base, crash)
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
