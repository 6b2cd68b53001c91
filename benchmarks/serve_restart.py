"""Restart-to-ready of ``pumpguard serve`` with a large journal, with and without a snapshot.

    python benchmarks/serve_restart.py [--events 1000000]

A journal is filled with a drill population's canonical events (as the HTTP
listener would journal them, 100 a message), then the service is started on
it twice: first with no snapshot (recovery replays the whole journal through
the engine), then again after a clean stop left a snapshot (recovery loads it
and replays nothing). Ready means listeners up and accepting. The baseline
in the same run is the time to read every journaled event back (the floor of
any recovery that replays).

Then the real thing, per engine mode (``process``, ``thread``): ``pumpguard
serve`` as its own process on that journal, killed with ``kill -9`` once its
engine has recovered (so the journal holds a snapshot), and started again:
the time from the new process's start to its MLLP port accepting, and to its
engine having recovered (``/healthz`` says ``recovery_done``). The floor in
the same run is a bare interpreter start and the import of the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pumpguard.engine.events import event_adapter
from pumpguard.service.app import Service
from pumpguard.service.config import ServeConfig
from pumpguard.service.journal import Inbound, Journal
from pumpguard.simulations.montecarlo import generate_population


def fill(path: Path, events: int, seed: int) -> int:
    patients = max(2, events // 330)
    gen = generate_population(patients, 0.3, seed=seed)
    lines = gen.lines[:events]
    journal = Journal(path)
    batch: list[str] = []
    count = 0
    for line in lines:
        batch.append(line)
        if len(batch) == 100:
            count += _append(journal, batch)
            batch = []
    if batch:
        count += _append(journal, batch)
    journal.close()
    return count


def _append(journal: Journal, lines: list[str]) -> int:
    events = tuple(event_adapter.validate_json(line) for line in lines)
    journal.append_wait(
        Inbound(
            channel="file",
            peer="benchmark",
            raw="\n".join(lines).encode(),
            received_at=events[-1].ts.timestamp(),
            dedupe_key=None,
            events=events,
            outcome="accepted",
            reason=None,
        )
    )
    return len(events)


async def start_once(config: ServeConfig) -> tuple[float, int, int | None]:
    service = Service(config)
    t0 = time.perf_counter()
    await service.start()
    ready = time.perf_counter() - t0
    status = service.status
    await service.stop()
    return ready, status.recovered_inputs, status.recovered_from


def read_back(path: Path) -> float:
    journal = Journal(path)
    t0 = time.perf_counter()
    n = sum(len(i.events) for i in journal.inputs_after(0))
    took = time.perf_counter() - t0
    journal.close()
    assert n > 0
    return took


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _recovered(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(json.loads(r.read())["recovery_done"])
    except (OSError, ValueError, KeyError):
        return False


def _until(check: Callable[[], bool], timeout_s: float) -> None:
    end = time.perf_counter() + timeout_s
    while not check():
        if time.perf_counter() > end:
            raise TimeoutError("the service did not get there")
        time.sleep(0.005)


def serve_once(workdir: Path, journal: Path, engine: str) -> dict[str, float]:
    """Start ``pumpguard serve`` on the journal; seconds to accepting and to recovered; kill -9."""
    mllp, http = _port(), _port()
    cfg = workdir / f"serve-{engine}.yaml"
    cfg.write_text(
        f"journal: {journal}\nclock: events\nengine: {engine}\n"
        f"mllp: {{host: 127.0.0.1, port: {mllp}}}\nhttp: {{host: 127.0.0.1, port: {http}}}\n"
        f"sinks:\n  - {{name: test, type: jsonl, path: {workdir / 'f.jsonl'}}}\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpguard", "serve", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _until(lambda: _accepts(mllp), 600)
        accepting = time.perf_counter() - t0
        _until(lambda: _recovered(http), 600)
        recovered = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return {"accepting_s": round(accepting, 3), "recovered_s": round(recovered, 3)}


def floors() -> dict[str, float]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pumpguard.cli"], check=True)
    return {"interpreter_s": round(bare, 3), "import_cli_s": round(time.perf_counter() - t0, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pumpguard-restart-") as tmp:
        path = Path(tmp) / "journal.sqlite"
        t0 = time.perf_counter()
        n = fill(path, args.events, args.seed)
        print(f"journal: {n} events in {time.perf_counter() - t0:.1f} s")
        floor = read_back(path)
        print(f"baseline: reading every journaled event back: {floor:.2f} s")
        config = ServeConfig(
            journal=path,
            clock="events",
            engine="thread",  # in this process: the recovery itself, no second interpreter
            mllp={"port": 0},  # type: ignore[arg-type]
            http=None,
            sinks=({"name": "null", "type": "jsonl", "path": Path(tmp) / "f.jsonl"},),  # type: ignore[arg-type]
        )
        cold = asyncio.run(start_once(config))
        print(
            "in process (engine: thread), no snapshot:   "
            + json.dumps({"ready_s": round(cold[0], 3), "replayed_inputs": cold[1]})
        )
        warm = asyncio.run(start_once(config))
        print(
            "in process (engine: thread), with snapshot: "
            + json.dumps(
                {"ready_s": round(warm[0], 3), "replayed_inputs": warm[1], "snapshot_at": warm[2]}
            )
        )
        print("floor:         " + json.dumps(floors()))
        for engine in ("process", "thread"):
            first = serve_once(Path(tmp), path, engine)  # the clean stops above left a snapshot
            again = serve_once(Path(tmp), path, engine)  # the first was killed with kill -9
            result = {"after_clean_stop": first, "after_kill_9": again}
            print(f"serve ({engine}): " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
