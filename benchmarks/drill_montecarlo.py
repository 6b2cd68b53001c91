"""Drill Monte Carlo throughput: generation and evaluation events/s, detection, false findings.

    python benchmarks/drill_montecarlo.py [--patients 1000] [--error-rate 0.3] [--seed 2026]
        [--edition seed|label-2024] [--site FILE] [--ablate]

The same figures ``pumpguard drill --patients N`` prints, as one JSON line for
tracking over time. ``--ablate`` runs the population once with no behaviour,
once per behaviour alone and once with all of them, and prints one line each
with the false findings by code: which damaged-but-correct situation the
engine still gets wrong.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from pumpguard.simulations.montecarlo import BEHAVIOURS, generate_population
from pumpguard.simulations.protocol import load_protocol
from pumpguard.simulations.scoring import raisable_codes, run_engine, score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--error-rate", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--edition", default="seed")
    ap.add_argument("--site")
    ap.add_argument("--ablate", action="store_true")
    args = ap.parse_args()
    pack, protocol = load_protocol(args.edition, args.site)
    mixes: list[tuple[str, frozenset[str]]] = [("all", BEHAVIOURS)]
    if args.ablate:
        mixes = [("none", frozenset())]
        mixes += [(b, frozenset({b})) for b in sorted(BEHAVIOURS)]
        mixes.append(("all", BEHAVIOURS))
    for name, mix in mixes:
        t0 = time.perf_counter()
        gen = generate_population(
            args.patients, args.error_rate, args.seed, protocol=protocol, mix=mix
        )
        gen_s = time.perf_counter() - t0
        run = run_engine(gen.lines, pack)
        sc = score(gen, run.findings, raisable_codes(pack))
        missed = Counter(d.injected.kind for d in sc.missed)
        print(
            json.dumps(
                {
                    "edition": args.edition,
                    "behaviours": name,
                    "patients": gen.patients,
                    "events": len(gen.lines),
                    "generation_events_per_s": round(len(gen.lines) / gen_s),
                    "evaluation_events_per_s": round(run.events / run.seconds),
                    **sc.summary(),
                    "false_by_code": dict(Counter(f.code for f in sc.false_findings)),
                    "missed_by_kind": dict(missed),
                    "seen": gen.seen,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
