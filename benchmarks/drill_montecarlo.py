"""Drill Monte Carlo throughput: generation and evaluation events/s, detection, false findings.

    python benchmarks/drill_montecarlo.py [--patients 1000] [--error-rate 0.3] [--seed 2026]

The same figures ``pumpguard drill --patients N`` prints, as one JSON line for
tracking over time.
"""

from __future__ import annotations

import argparse
import json
import time

from pumpguard.engine.pack import load_pack
from pumpguard.rules import default_pack
from pumpguard.simulations.montecarlo import generate_population
from pumpguard.simulations.scoring import raisable_codes, run_engine, score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--error-rate", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    t0 = time.perf_counter()
    gen = generate_population(args.patients, args.error_rate, args.seed)
    gen_s = time.perf_counter() - t0
    pack = load_pack(default_pack())
    run = run_engine(gen.lines, pack)
    sc = score(gen, run.findings, raisable_codes(pack))
    print(
        json.dumps(
            {
                "patients": gen.patients,
                "events": len(gen.lines),
                "generation_events_per_s": round(len(gen.lines) / gen_s),
                "evaluation_events_per_s": round(run.events / run.seconds),
                **sc.summary(),
            }
        )
    )


if __name__ == "__main__":
    main()
