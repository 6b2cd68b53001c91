"""Report build time and size for a drill population, against baselines measured in the same run.

    python benchmarks/report_size.py [--patients 1000] [--repeat 3] [--seed 7]

Generates a Monte Carlo population, replays it once (its findings are the
report's input; that replay's time is printed too, one run), then measures,
``--repeat`` times each, medians printed:

- read:    every event through the adapters (validated), nothing else: the floor
           under any report, since the report must read each event once
- report:  ``pumpguard report`` in-process: findings + events -> one HTML file

The targets (issue 13): a 1,000-patient report builds in under 30 s and stays
under 20 MB.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pumpguard.pipeline import Input, RejectReport, audit
from pumpguard.report_build import read_events
from pumpguard.report_cmd import write_report
from pumpguard.simulations.montecarlo import generate_population
from pumpguard.simulations.protocol import load_protocol


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    pack, protocol = load_protocol("seed", None, None)
    with tempfile.TemporaryDirectory(prefix="pumpguard-report-bench-") as tmp:
        d = Path(tmp)
        gen = generate_population(args.patients, 0.1, args.seed, protocol=protocol)
        events = d / "population.jsonl"
        events.write_text("".join(line + "\n" for line in gen.lines), encoding="utf-8")
        t0 = time.perf_counter()
        result = audit([events], pack, out=io.StringIO(), rejects=RejectReport(None))
        replay_s = time.perf_counter() - t0
        inputs = [Input(events, events.name)]

        def read() -> None:
            for _ in read_events([events], None, [], []):
                pass

        def report() -> None:
            write_report(d / "report.html", result.findings, inputs, pack)

        read_s = statistics.median(_timed(read) for _ in range(args.repeat))
        report_s = statistics.median(_timed(report) for _ in range(args.repeat))
        size = (d / "report.html").stat().st_size
        mb_in = events.stat().st_size / 1e6
    figures = {"report_s": report_s, "read_s": read_s, "replay_s": replay_s, "size_mb": size / 1e6}
    print(
        f"{args.patients} patients, {len(gen.lines):,} events ({mb_in:.1f} MB), "
        f"{len(result.findings)} findings; medians of {args.repeat}\n"
        f"  read events (baseline)  {read_s:7.2f} s\n"
        f"  report build            {report_s:7.2f} s  ({report_s / read_s:.2f}x the read)\n"
        f"  replay (1 run)          {replay_s:7.2f} s\n"
        f"  report size             {size / 1e6:7.2f} MB (target: < 30 s, < 20 MB)"
    )
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
