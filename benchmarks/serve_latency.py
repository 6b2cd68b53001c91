"""ACK latency of ``pumpguard serve`` under an open-loop load, against a bare MLLP server.

    python benchmarks/serve_latency.py [--rate 1000] [--seconds 10] [--connections 8] [--thread-too]

Open loop: message i of connection k is due at ``(i + k / connections) /
rate_per_connection`` seconds (arrivals evenly spaced over the connections,
not all eight at one instant); its latency is measured from when it was due,
not from when it was sent (a slow answer delays the next send, and that wait
counts: no coordinated omission). The baseline is a bare asyncio MLLP server in its own
process that answers each frame with a fixed ACK and journals nothing. Then
the rate is stepped up (``--ramp``), over each connection count of
``--ramp-connections``, to find the highest sustained rate with nothing lost
(every message acknowledged ``AA`` and in the journal once) and p99 under 50
ms. MLLP has one message in flight per connection, so a connection's rate is
at most one over its round trip (about 4.5 ms under load: mapping, a group
commit's fsync, the ACK): the connection count bounds the rate as well.
Event-to-finding latency is the service's own figure, logged when it stops:
from a message's commit to the journaling of a finding it raised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from pumpguard.adapters.hl7v2 import Hl7Writer, UnsupportedEvent
from pumpguard.adapters.mllp import MllpClient
from pumpguard.engine.events import event_adapter
from pumpguard.simulations.montecarlo import generate_population

BARE_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    ACK = b"\\x0bMSH|^~\\\\&|BARE|BARE|||20260101000000||ACK|1|P|2.6\\rMSA|AA|1\\r\\x1c\\r"
    async def conn(r, w):
        buf = b""
        try:
            while True:
                chunk = await r.read(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\\x1c\\r" in buf:
                    _, buf = buf.split(b"\\x1c\\r", 1)
                    w.write(ACK)
                await w.drain()
        finally:
            w.close()
    async def main():
        srv = await asyncio.start_server(conn, "127.0.0.1", int(sys.argv[1]))
        async with srv:
            await srv.serve_forever()
    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def messages(count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """(patient, message) of a drill population's HL7 (unique control ids), at most ``count``."""
    patients = max(4, count // 60)
    while True:
        gen = generate_population(patients, 0.3, seed=seed)
        writer = Hl7Writer()
        out: list[tuple[str, bytes]] = []
        for line in gen.lines:
            e = event_adapter.validate_json(line)
            try:
                out.extend((e.patient_id, m.encode()) for m in writer.render(e))
            except UnsupportedEvent:
                continue
        if len(out) >= count:
            return out[:count]
        patients = patients * 2


async def wait_port(port: int, timeout_s: float = 60) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.02)
    raise TimeoutError(port)


async def load(
    port: int, msgs: list[tuple[str, bytes]], rate: float, connections: int
) -> list[float]:
    """Open-loop send; latencies (s) from each message's due time to its ACK.

    Each patient's messages stay on one connection, in order (as a pump server sends).
    """
    where: dict[str, int] = {}
    per: list[list[bytes]] = [[] for _ in range(connections)]
    for patient, m in msgs:
        per[where.setdefault(patient, len(where) % connections)].append(m)
    interval = connections / rate
    start = time.perf_counter() + 0.2
    latencies: list[float] = []

    async def one(k: int, batch: list[bytes]) -> None:
        offset = k * interval / connections  # arrivals evenly spaced, not 8 at one instant
        async with MllpClient("127.0.0.1", port, timeout_s=30) as client:
            for i, m in enumerate(batch):
                due = start + offset + i * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await client.send(m)
                latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(one(k, b) for k, b in enumerate(per)))
    return latencies


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def summary(lat: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(lat, 0.50), 2),
        "p99_ms": round(pct(lat, 0.99), 2),
        "p99.9_ms": round(pct(lat, 0.999), 2),
        "median_ms": round(statistics.median(lat) * 1000, 2),
    }


def start_serve(workdir: Path, port: int, engine: str = "process") -> subprocess.Popen[bytes]:
    cfg = workdir / "serve.yaml"
    cfg.write_text(
        f"journal: journal.sqlite\nclock: events\nengine: {engine}\n"
        f"mllp: {{host: 127.0.0.1, port: {port}}}\nhttp: null\n"
        "sinks:\n  - {name: test, type: jsonl, path: sink.jsonl}\n"
    )
    with open(workdir / "serve.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pumpguard", "serve", "--config", str(cfg)],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_serving(log: Path, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    """Until the service says it serves with its engine recovered (the port opens earlier)."""
    t0 = time.perf_counter()
    while '"pumpguard serving"' not in log.read_text():
        if proc.poll() is not None or time.perf_counter() - t0 > timeout_s:
            raise RuntimeError("pumpguard serve did not get ready")
        time.sleep(0.02)


def journaled(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def event_to_finding(log: Path) -> object:
    """The service's own figure, logged at stop: commit to journaled finding, in process."""
    for line in reversed(log.read_text().splitlines()):
        if '"event to finding"' in line:
            rec = json.loads(line)
            return {k: rec[k] for k in ("count", "p50_ms", "p99_ms")}
    return None


def run_serve(
    msgs: list[tuple[str, bytes]], rate: float, connections: int, engine: str = "process"
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="pumpguard-lat-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        proc = start_serve(workdir, port, engine)
        try:
            asyncio.run(wait_port(port))
            wait_serving(workdir / "serve.log", proc)
            lat = asyncio.run(load(port, msgs, rate, connections))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        stored = journaled(workdir / "journal.sqlite")
        e2f = event_to_finding(workdir / "serve.log")
        return {
            "rate": rate,
            **summary(lat),
            "acked": len(lat),
            "journaled": stored,
            "lost": len(msgs) - stored,
            "event_to_finding": e2f,
        }


def run_bare(msgs: list[tuple[str, bytes]], rate: float, connections: int) -> dict[str, object]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        asyncio.run(wait_port(port))
        lat = asyncio.run(load(port, msgs, rate, connections))
    finally:
        proc.kill()
        proc.wait()
    return {"rate": rate, **summary(lat), "acked": len(lat)}


def _sustained(r: dict[str, object]) -> bool:
    return not r["lost"] and float(str(r["p99_ms"])) <= 50


def ramp(
    start: float, rates: list[float], connections: int, measured: dict[str, object] | None
) -> float | None:
    """The highest rate of ``start`` then ``rates`` sustained over ``connections`` (None:
    not even ``start``); each step's figures are printed."""
    first = measured or run_serve(messages(int(start * 5)), start, connections)
    if measured is None:
        print(f"ramp {connections:>2} conns {start:>6.0f}/s:", json.dumps(first))
    if not _sustained(first):
        return None
    best = start
    for rate in (r for r in rates if r > start):
        r = run_serve(messages(int(rate * 5)), rate, connections)
        print(f"ramp {connections:>2} conns {rate:>6.0f}/s:", json.dumps(r))
        if not _sustained(r):
            break
        best = rate
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument(
        "--ramp", type=float, nargs="*", default=[1250, 1500, 1750, 2000, 2500, 3000, 4000]
    )
    ap.add_argument(
        "--ramp-connections",
        type=int,
        nargs="*",
        default=[8, 16],
        help="connection counts to ramp over (MLLP: one message in flight per connection)",
    )
    ap.add_argument(
        "--thread-too",
        action="store_true",
        help="also run the service with its engine on a thread (engine: thread), same load",
    )
    args = ap.parse_args()
    msgs = messages(int(args.rate * args.seconds))
    print(
        "bare asyncio MLLP server (no journal):",
        json.dumps(run_bare(msgs, args.rate, args.connections)),
    )
    first = run_serve(msgs, args.rate, args.connections)
    print("pumpguard serve:                      ", json.dumps(first))
    if args.thread_too:
        other = run_serve(msgs, args.rate, args.connections, engine="thread")
        print("pumpguard serve, engine: thread:      ", json.dumps(other))
    for connections in args.ramp_connections:
        best = ramp(
            args.rate, args.ramp, connections, first if connections == args.connections else None
        )
        if best is None:
            print(f"{connections} connections: not sustained at {args.rate:.0f} messages/s")
        else:
            print(
                f"{connections} connections: highest sustained rate with nothing lost and "
                f"p99 <= 50 ms: {best:.0f} messages/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
