"""Partitioned replay: one process against a 2-process pool and a 2-worker Dask LocalCluster.

    .venv/bin/python benchmarks/replay_scale.py [--events 1000000] [--repeat 3] [--modes ...]

Generates a drill population (``pumpguard drill --generate-only``; populations
of several seeds, ids prefixed per seed, until ``--events``) to a file, then
runs ``pumpguard replay`` on it in a fresh process per run:

- single: ``--workers 1`` (the baseline the speed-up is relative to)
- pool:   ``--workers 2``
- dask:   ``--dask local:2``

Prints, as medians over ``--repeat`` interleaved runs: events/s, speed-up and
parallel efficiency against single, and the peak RSS of the parent and of
each worker (from the run's ``replay.resources`` log line). Also checks that
every run wrote the same findings bytes. ``--keep FILE`` reuses a generated
stream (the 10,000,000-event one takes a while to make).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PUMPGUARD = [sys.executable, "-m", "pumpguard"]
MODES = {
    "single": ["--workers", "1"],
    "pool": ["--workers", "2"],
    "dask": ["--dask", "local:2"],
}
PATIENTS_PER_SEED = 2000


def generate(path: Path, events: int) -> int:
    """Write ``events`` events of drill populations to ``path``; return the count written."""
    patients_per_seed = min(PATIENTS_PER_SEED, events // 300 + 1)  # about 390 events a patient
    written = 0
    seed = 1
    with path.open("w", encoding="utf-8") as out, tempfile.TemporaryDirectory() as tmp:
        while written < events:
            chunk = Path(tmp) / f"seed-{seed}.jsonl"
            subprocess.run(
                [
                    *PUMPGUARD,
                    "drill",
                    "--patients",
                    str(patients_per_seed),
                    "--seed",
                    str(seed),
                    "--error-rate",
                    "0.1",
                    "--generate-only",
                    "--out",
                    str(chunk),
                ],
                check=True,
                capture_output=True,
            )
            with chunk.open(encoding="utf-8") as fh:
                for line in fh:
                    if written >= events:
                        break
                    if seed > 1:  # another seed reuses patient and event ids: make them its own
                        ev = json.loads(line)
                        ev["patient_id"] = f"S{seed}-{ev['patient_id']}"
                        ev["event_id"] = f"S{seed}-{ev['event_id']}"
                        line = json.dumps(ev, separators=(",", ":")) + "\n"
                    out.write(line)
                    written += 1
            chunk.unlink()
            seed += 1
    return written


def replicate(source: Path, path: Path, copies: int) -> int:
    """``copies`` copies of a drill stream, each under its own patient and event ids.

    A 10,000,000-event stream straight from the drills takes about an hour to
    generate here; copies of a 1,000,000-event population (patients ``R2-...``,
    ``R3-...``) are as many independent patients, in minutes.
    """
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for copy in range(1, copies + 1):
            with source.open(encoding="utf-8") as fh:
                for line in fh:
                    if copy > 1:
                        ev = json.loads(line)
                        ev["patient_id"] = f"R{copy}-{ev['patient_id']}"
                        ev["event_id"] = f"R{copy}-{ev['event_id']}"
                        line = json.dumps(ev, separators=(",", ":")) + "\n"
                    out.write(line)
                    written += 1
    return written


def measure(mode: str, stream: Path, out: Path, partitions: int) -> dict[str, object]:
    """One replay in a fresh process: wall time, counts, peak memory, findings digest."""
    args = [*PUMPGUARD, "--log-json", "replay", str(stream), "--out", str(out), "--quiet"]
    args += [*MODES[mode], "--partitions", str(partitions)]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3, 4):
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{mode}: pumpguard replay exited {proc.returncode}")
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    done = next(entry for entry in logs if entry.get("event") == "replay.done")
    resources = next(entry for entry in logs if entry.get("event") == "replay.resources")
    rss: dict[str, float] = resources["peak_rss_mb"]
    return {
        "s": seconds,
        "events": done["evaluated"],
        "parent_mb": rss.get("parent", 0.0),
        "worker_mb": sorted(v for k, v in rss.items() if k not in ("parent", "main")),
        "digest": hashlib.sha256(out.read_bytes()).hexdigest()[:16],
        "spool_mb": done["spool_bytes"] / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="single,pool,dask")
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--keep", type=Path, help="generated stream: reused if present, else written")
    ap.add_argument(
        "--replicate",
        type=int,
        default=1,
        metavar="K",
        help="generate --events/K by the drills and write K copies under new ids",
    )
    args = ap.parse_args()
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="pumpguard-scale-") as tmp:
        stream = args.keep or Path(tmp) / "population.jsonl"
        if not stream.exists():
            t = time.perf_counter()
            if args.replicate > 1:
                base = Path(tmp) / "base.jsonl"
                generate(base, args.events // args.replicate)
                n = replicate(base, stream, args.replicate)
                base.unlink()
            else:
                n = generate(stream, args.events)
            print(f"generated {n:,} events in {time.perf_counter() - t:.0f} s to {stream}")
        size = stream.stat().st_size / 1e6
        print(f"stream {stream} ({size:,.0f} MB), {args.partitions} partitions, 2 workers")
        runs: dict[str, list[dict[str, object]]] = {m: [] for m in modes}
        for i in range(args.repeat):  # interleaved, so machine noise hits every mode alike
            for mode in modes:
                r = measure(mode, stream, Path(tmp) / f"findings-{mode}.jsonl", args.partitions)
                runs[mode].append(r)
                print(
                    f"  run {i + 1} {mode:6} {r['s']:8.1f} s  parent {r['parent_mb']:.0f} MB  "
                    f"workers {r['worker_mb']} MB  digest {r['digest']}",
                    flush=True,
                )
    report(runs)


def report(runs: dict[str, list[dict[str, object]]]) -> None:
    digests = {str(r["digest"]) for rs in runs.values() for r in rs}
    rate = {
        m: statistics.median(float(r["events"]) / float(r["s"]) for r in rs)
        for m, rs in runs.items()
    }  # type: ignore[arg-type]
    base = rate.get("single")
    print(
        f"\n{'mode':7} {'events/s':>10} {'speed-up':>9} {'efficiency':>10} {'parent MB':>10}  workers MB"
    )
    for mode, rs in runs.items():
        parent = statistics.median(float(r["parent_mb"]) for r in rs)  # type: ignore[arg-type]
        workers = [list(r["worker_mb"]) for r in rs]  # type: ignore[call-overload]
        peak = [statistics.median(w[i] for w in workers) for i in range(min(map(len, workers)))]
        speed = rate[mode] / base if base else float("nan")
        eff = speed / (1 if mode == "single" else 2)
        cells = ", ".join(f"{p:.0f}" for p in peak) or "-"
        print(f"{mode:7} {rate[mode]:10,.0f} {speed:9.2f} {eff:10.2f} {parent:10.0f}  {cells}")
    if "pool" in rate and "dask" in rate:
        print(f"dask / pool events/s: {rate['dask'] / rate['pool']:.2f}")
    spool = statistics.median(float(r["spool_mb"]) for rs in runs.values() for r in rs)  # type: ignore[arg-type]
    print(f"spool on disk: {spool:,.0f} MB; findings identical in every run: {len(digests) == 1}")


if __name__ == "__main__":
    main()
