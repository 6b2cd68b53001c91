"""Replay throughput and memory, against a parse-only baseline measured in the same run.

    python benchmarks/replay_throughput.py [--events 100000] [--repeat 3]

Generates a multi-patient canonical JSONL stream (full Blincyto courses with a
few injected errors), then runs, each in a fresh process so peak RSS is its own:

- parse:   ``json.loads`` of every line (the baseline the targets are relative to)
- engine:  validate + evaluate the already time-ordered stream (no replay index):
           shows whether the engine itself accumulates anything per event
- replay:  the full ``pumpguard replay`` path (validate, spool, sort, evaluate; on one
           process an input in replay order is evaluated while it is read)
- spooled: the same, every partition evaluated from its spool (``Scale(in_order=False)``:
           what an input out of order costs; this checkout only)
- stages:  microseconds per event of each stage (``stages.py``: instrumented, so slower)

With ``--baseline-python``, another checkout's engine and replay run on the same
stream in the same run; with ``--stages-before``, another checkout's stage
breakdown is printed beside this one's. Prints medians over ``--repeat`` runs and
the ratios.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CHILD = r"""
import json, sys, time
mode, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
n = 0
if mode == "parse":
    with open(path, "rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
elif mode == "engine":
    from pumpguard.adapters.jsonl import JsonlSource
    from pumpguard.engine.core import Engine
    from pumpguard.engine.pack import load_pack
    from pumpguard.rules import default_pack
    engine = Engine(load_pack(default_pack()))
    found = 0
    for ev in JsonlSource(path):
        found += len(engine.submit(ev))
        n += 1
    found += len(engine.advance(engine.watermark))
elif mode in ("replay", "spooled"):
    import io
    from pathlib import Path
    from pumpguard.engine.pack import load_pack
    from pumpguard.rules import default_pack
    out = io.StringIO()
    pack = load_pack(default_pack())
    try:
        from pumpguard.pipeline import RejectReport, audit
    except ImportError:  # older commits (the baseline): the CLI module held the replay
        from pumpguard.cli import _RejectReport, run_replay
        findings, engine, replay = run_replay([Path(path)], out, _RejectReport(None), pack)
        n = replay.stats.evaluated
    else:
        options = {}
        if mode == "spooled":  # this checkout only: every partition from its spool
            from pumpguard.partition import Scale
            options["scale"] = Scale(in_order=False)
        n = audit([Path(path)], pack, out=out, rejects=RejectReport(None), **options).stats.evaluated
elif mode == "stages":
    from stages import breakdown
    n, stages = breakdown(path)
dt = time.perf_counter() - t
# VmHWM is this address space's peak; ru_maxrss would carry the parent's peak across exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
result = {"n": n, "s": dt, "rss_mb": hwm / 1024}
if mode == "stages":
    result["stages"] = stages
print(json.dumps(result))
"""


def generate(path: Path, target_events: int, patients: int | None = None) -> int:
    """Write a time-ordered stream of at least ``target_events`` events; return the count.

    With ``patients``, the patient count is fixed and each patient runs course
    after course, so a longer stream means more events per patient, not more
    patients: what memory does then is what accumulates per event.
    """
    from pumpguard.simulations.course import CourseBuilder

    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    streams = []
    total = 0
    i = 0
    while total < target_events:
        pid, rep = (
            (f"BP{i:05d}", 0) if patients is None else (f"BP{i % patients:05d}", i // patients)
        )
        b = CourseBuilder(pid, weight_kg=60.0 + i % 30)
        offset = 7 * (i if patients is None else i % patients)
        start = t0 + timedelta(days=130 * rep, hours=offset)
        b.register(start - timedelta(hours=8))
        end = b.cycle(1, start, doses=[(1, 9.0), (8, 28.0)], hospital_days=9)
        c2 = end + timedelta(days=14)
        end = b.cycle(2, c2, hospital_days=2)
        b.cycle(3, end + timedelta(days=14), phase="consolidation", supervise_start=True)
        if i % 10 == 0:  # a deliberate error in one patient out of ten
            b.add("pump.flush", start + timedelta(days=3, minutes=7), volume_ml=5.0)
        if rep:
            for ev in b.events:  # later courses of the same patient: new ids, same patient
                ev["event_id"] = f"{ev['event_id']}-c{rep}"
        total += len(b.events)
        streams.append(b.sorted_events())
        i += 1
    with path.open("w") as fh:
        for ev in heapq.merge(*streams, key=lambda e: e["ts"]):
            fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
    return total


def measure(mode: str, path: Path, python: str = sys.executable) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    proc = subprocess.run(
        [python, "-c", CHILD, mode, str(path)], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="parse,engine,replay,stages")
    ap.add_argument("--patients", type=int, default=None, help="fixed number of patients")
    ap.add_argument(
        "--baseline-python",
        default=None,
        help="another checkout's interpreter: its engine and replay are measured on the same stream",
    )
    ap.add_argument(
        "--stages-before",
        default=None,
        help="another checkout's interpreter whose stage breakdown is printed beside this one's "
        "(it must have the stages' functions: the commit this round started from)",
    )
    args = ap.parse_args()
    modes = [(m, sys.executable) for m in args.modes.split(",")]
    if args.baseline_python:
        modes += [(m, args.baseline_python) for m in ("engine", "replay") if m in args.modes]
    if args.stages_before and "stages" in args.modes:
        modes.append(("stages", args.stages_before))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.jsonl"
        t = time.perf_counter()
        n = generate(path, args.events, args.patients)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {n:,} events ({size_mb:.1f} MB) in {time.perf_counter() - t:.1f} s")
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeat):  # interleaved, so machine noise hits every mode alike
            for mode, python in modes:
                label = mode if python == sys.executable else f"base-{mode}"
                if mode == "stages" and python == args.stages_before:
                    label = "before-stages"
                results.setdefault(label, []).append(measure(mode, path, python))
    report(results)


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """Medians per mode, ratios to parse and to the baseline checkout, and the stage table."""
    base = (
        statistics.median(r["n"] / r["s"] for r in results["parse"]) if "parse" in results else None
    )
    print(
        f"\n{'mode':12} {'events/s (median)':>18} {'x slower than parse':>20} {'peak RSS MB':>12}"
    )
    rates: dict[str, float] = {}
    for mode, runs in results.items():
        if mode.endswith("stages"):
            continue
        rate = rates[mode] = statistics.median(r["n"] / r["s"] for r in runs)
        rss = statistics.median(r["rss_mb"] for r in runs)
        ratio = f"{base / rate:.1f}" if base else "-"
        print(f"{mode:12} {rate:18,.0f} {ratio:>20} {rss:12.1f}")
    for mode in ("engine", "replay"):
        if mode in rates and f"base-{mode}" in rates:
            print(f"{mode}: {rates[mode] / rates[f'base-{mode}']:.2f} x the baseline checkout")
    if "stages" in results:
        before = results.get("before-stages")
        head = f"{'stage (instrumented run)':26} {'us/event (median)':>18}"
        print("\n" + head + (f" {'before':>10} {'after/before':>13}" if before else ""))
        names = results["stages"][0]["stages"]
        for name in names:
            us = statistics.median(r["stages"][name] for r in results["stages"])
            line = f"{name:26} {us:18.1f}"
            if before:
                was = statistics.median(r["stages"][name] for r in before)
                line += f" {was:10.1f} {us / was if was else float('nan'):13.2f}"
            print(line)
        if before:
            total = sum(statistics.median(r["stages"][n] for r in results["stages"]) for n in names)
            was = sum(statistics.median(r["stages"][n] for r in before) for n in names)
            print(f"{'total':26} {total:18.1f} {was:10.1f} {total / was:13.2f}")


if __name__ == "__main__":
    main()
