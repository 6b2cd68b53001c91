"""Journal append throughput: group commit against one commit per message, same run.

    python benchmarks/journal_commit.py [--messages 4000] [--producers 8] [--repeat 3] [--dir D]

Both modes use the real journal (WAL, ``synchronous=FULL``: every commit fsyncs the
WAL) on a file in ``--dir`` (default: a temporary folder; put it on the disk the
service would use, since a tmpfs makes fsync free). Each producer is an asyncio task
that appends one PCD-like message (one event, ~600 bytes raw) and awaits it before
the next, as an MLLP connection waits for its ACK; ``--producers`` run at once.

- group:    the journal as the service runs it (batches up to 1000, adaptive commit delay)
- per-msg:  the baseline, ``max_batch=1``: one transaction, so one fsync, per message

Prints the median over ``--repeat`` runs (interleaved, so machine noise hits both
alike) of messages/s, commits, and p50/p99 append latency, and the raw fsync time of
the folder's disk measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from pumpguard.engine.events import parse_event
from pumpguard.service.journal import Inbound, Journal

RAW = (b"MSH|^~\\&|PAT_DEVICE_BBRAUN^00122118AA000042^EUI-64|BBRAUN|PUMPGUARD|WARD7|" * 8)[:600]


def message(producer: int, n: int) -> Inbound:
    key = f"BBRAUN|WARD7|{producer}-{n}"
    event = parse_event(
        {
            "event_id": key,
            "type": "pump.infusion_started",
            "ts": "2026-03-02T08:00:00Z",
            "patient_id": f"pt-{producer}",
            "pump_id": f"P{producer}",
            "drug": "blinatumomab",
            "rate_ml_h": 10,
        }
    )
    return Inbound(
        "mllp", f"127.0.0.1:{5000 + producer}", RAW, 0.0, key, (event,), "accepted", None
    )


async def _produce(journal: Journal, producer: int, count: int, lat: list[float]) -> None:
    for n in range(count):
        m = message(producer, n)
        t = time.perf_counter()
        await journal.append(m)
        lat.append(time.perf_counter() - t)


def run_once(folder: Path, mode: str, messages: int, producers: int) -> dict[str, float]:
    path = folder / f"{mode}-{time.monotonic_ns()}.db"
    journal = Journal(path, max_batch=1 if mode == "per-msg" else 1000)
    lat: list[float] = []
    per = messages // producers

    async def main() -> None:
        await asyncio.gather(*(_produce(journal, p, per, lat) for p in range(producers)))

    try:
        before = journal.commits
        t = time.perf_counter()
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        elapsed = time.perf_counter() - t
        commits = journal.commits - before
    finally:
        journal.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    lat.sort()
    return {
        "rate": len(lat) / elapsed,
        "commits": commits,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
    }


def fsync_ms(folder: Path, n: int = 30) -> float:
    """Median time of one 4 KiB write + fsync in ``folder``: the floor under each commit."""
    path = folder / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    return 1000 * statistics.median(times)


def bench(messages: int, producers: int, repeat: int, folder: Path) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {"group": [], "per-msg": []}
    for _ in range(repeat):
        for mode in runs:
            runs[mode].append(run_once(folder, mode, messages, producers))
    return {
        mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--producers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="folder for the journal files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        floor = fsync_ms(folder)
        results = bench(args.messages, args.producers, args.repeat, folder)
    print(
        f"{args.messages:,} messages from {args.producers} producers, synchronous=FULL, "
        f"median of {args.repeat}; fsync on this disk: {floor:.2f} ms (median)"
    )
    print(f"\n{'mode':8} {'messages/s':>11} {'commits':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, r in results.items():
        print(
            f"{mode:8} {r['rate']:11,.0f} {r['commits']:8,.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
        )
    speedup = results["group"]["rate"] / results["per-msg"]["rate"]
    print(f"\ngroup commit: {speedup:.1f}x the messages/s of one commit per message")


if __name__ == "__main__":
    main()
