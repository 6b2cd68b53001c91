"""``pumpguard drill``: generate courses with injected errors, run the engine, score it.

Wiring only; the scenario language, generator and scoring live in
``pumpguard.simulations``. Exit status: 0 every scorable deviation detected
and no false finding; 1 a deviation missed (or not injected) or a false
finding; 2 usage or an unreadable scenario; 5 the engine raised an alert
because a rule could not be evaluated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pumpguard.engine.errors import RulePackError
from pumpguard.engine.findings import rfc3339
from pumpguard.engine.pack import CompiledPack
from pumpguard.progress import Progress, for_terminal
from pumpguard.simulations.generator import Generated, generate
from pumpguard.simulations.montecarlo import generate_population
from pumpguard.simulations.protocol import Protocol, load_protocol
from pumpguard.simulations.scenario import (
    Scenario,
    ScenarioError,
    catalogue_dir,
    iter_scenario_files,
    load_scenario,
)
from pumpguard.simulations.scoring import Score, raisable_codes, run_engine, score

__all__ = ["COMMANDS", "add_parser", "run"]

COMMANDS = ("drill",)

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_USAGE = 2
EXIT_ENGINE = 5


def add_parser(sub: Any) -> None:
    dp = sub.add_parser(
        "drill",
        help="run drill scenarios (or a Monte Carlo population) through the engine and score",
        description="Generate event streams with injected deviations, evaluate them in "
        "simulated time, and score detection. Exit 1 when a deviation is missed.",
    )
    dp.add_argument("scenarios", nargs="*", type=Path, metavar="SCENARIO", help="file or folder")
    dp.add_argument("--catalogue", action="store_true", help="the bundled scenario catalogue")
    dp.add_argument("--seed", type=int, help="override each scenario's seed / population seed")
    dp.add_argument("--patients", type=int, help="Monte Carlo: population size")
    dp.add_argument(
        "--error-rate",
        type=float,
        default=0.1,
        help="Monte Carlo: share of patients with one injected deviation (default 0.1)",
    )
    dp.add_argument(
        "--edition",
        choices=["seed", "label-2024"],
        default="seed",
        help="Monte Carlo: label edition (scenarios name their own)",
    )
    dp.add_argument(
        "--site",
        type=Path,
        metavar="FILE",
        help="Monte Carlo: a pack site file whose parameters the population follows "
        "(scenarios name their own)",
    )
    dp.add_argument(
        "--live",
        action="store_true",
        help="Monte Carlo: feed the live core in arrival order (documentation up to 2 h late, "
        "pump bursts after outages) and count findings raised then withdrawn",
    )
    dp.add_argument("--out", type=Path, help="write the generated stream here")
    dp.add_argument(
        "--format",
        choices=["jsonl", "hl7"],
        default="jsonl",
        help="stream format for --out; hl7 writes what HL7 v2 can carry (pump delivery, "
        "alarms, ADT) to OUT as MLLP and every other event, bag changes included, to a "
        "side file named after OUT without its suffix: out.hl7 -> out.rest.jsonl",
    )
    dp.add_argument(
        "--json",
        type=Path,
        help="write the machine-readable report here ('-' for "
        "standard output, replacing the terminal report)",
    )
    dp.add_argument(
        "--generate-only", action="store_true", help="write --out (required), do not evaluate"
    )
    dp.add_argument("--pack", type=Path, help="rule pack folder (default: Blincyto)")
    dp.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    if args.generate_only and args.out is None:
        sys.stderr.write("pumpguard drill: --generate-only needs --out FILE to write to\n")
        return EXIT_USAGE
    if args.patients is not None:
        return _montecarlo(args)
    paths: list[Path] = list(args.scenarios)
    if args.catalogue:
        paths.append(catalogue_dir())
    if not paths:
        sys.stderr.write(
            "pumpguard drill: give SCENARIO files/folders, --catalogue or --patients\n"
        )
        return EXIT_USAGE
    files = [f for p in paths for f in iter_scenario_files(p)]
    packs: dict[tuple[str, str | None], tuple[CompiledPack, Protocol]] = {}
    reports: list[dict[str, Any]] = []
    streams: list[str] = []
    status = EXIT_OK
    text = args.json is None or str(args.json) != "-"
    for f in files:
        made = _generate_scenario(f, args, packs)
        if made is None:
            return EXIT_USAGE
        scenario, pack, gen, gen_s = made
        streams.extend(gen.lines)
        if args.generate_only:
            continue
        rep, outcome = _score_scenario(scenario, pack, gen, gen_s, text)
        reports.append(rep)
        status = max(status, outcome)
    if args.out is not None:
        _write_stream(args.out, sorted(streams, key=_ts_key), args.format)
    if args.generate_only:
        return EXIT_OK
    total = _totals(reports)
    if text:
        _print_totals(total, {k: v[0] for k, v in packs.items()})
    if args.json is not None:
        _write_json(args.json, {"scenarios": reports, "summary": total})
    return status


def _generate_scenario(
    f: Path,
    args: argparse.Namespace,
    packs: dict[tuple[str, str | None], tuple[CompiledPack, Protocol]],
) -> tuple[Scenario, CompiledPack, Generated, float] | None:
    """Load one scenario and generate its stream (packs cached per edition and site).

    None (after saying why on stderr) when the scenario or its pack cannot be used.
    """
    try:
        scenario = load_scenario(f)
    except ScenarioError as exc:
        sys.stderr.write(f"pumpguard drill: {exc}\n")
        return None
    site = str(scenario.site_file) if scenario.site_file is not None else None
    key = (scenario.patient.edition, site)
    try:
        if key not in packs:
            packs[key] = load_protocol(key[0], site, args.pack)
        pack, protocol = packs[key]
        t0 = time.perf_counter()
        gen = generate(scenario, protocol, seed=args.seed)
    except (ValueError, RulePackError) as exc:
        sys.stderr.write(f"pumpguard drill: {f}: {exc}\n")
        return None
    return scenario, pack, gen, time.perf_counter() - t0


def _score_scenario(
    scenario: Scenario, pack: CompiledPack, gen: Generated, gen_s: float, text: bool
) -> tuple[dict[str, Any], int]:
    """Evaluate and score one generated stream: its report and the exit status it earns."""
    result = run_engine(gen.lines, pack)
    sc = score(gen, result.findings, raisable_codes(pack))
    rep = _report(scenario.name, gen, sc, gen_s, result.seconds, result.events)
    rep["description"] = scenario.description
    if text:
        _print_scenario(rep, sc)
    outcome = EXIT_OK
    if sc.missed or sc.false_findings:
        outcome = EXIT_MISSED
    if result.engine_errors:
        outcome = EXIT_ENGINE
    return rep, outcome


def _montecarlo(args: argparse.Namespace) -> int:
    if args.patients < 1 or not 0 <= args.error_rate <= 1:
        sys.stderr.write("pumpguard drill: --patients must be >= 1, --error-rate in [0, 1]\n")
        return EXIT_USAGE
    seed = 1 if args.seed is None else args.seed
    try:
        pack, protocol = load_protocol(args.edition, args.site, args.pack)
    except RulePackError as exc:
        sys.stderr.write(f"pumpguard drill: {exc}\n")
        return EXIT_USAGE
    if args.live:
        from pumpguard.drill_live import live_drill

        figures = live_drill(pack, args.patients, args.error_rate, seed, args.edition)
        sys.stdout.write(json.dumps(figures) + "\n")
        return EXIT_OK if figures["converged"] else 1
    shown = for_terminal(args.quiet)
    shown.count("generate patients", 0, args.patients)
    t0 = time.perf_counter()
    gen = generate_population(args.patients, args.error_rate, seed, protocol=protocol)
    gen_s = time.perf_counter() - t0
    shown.count("generate patients", gen.patients, args.patients)
    if args.out is not None:
        _write_stream(args.out, gen.lines, args.format)
    if args.generate_only:
        shown.close()
        sys.stderr.write(
            f"pumpguard drill: {len(gen.lines)} events for {gen.patients} patients in "
            f"{gen_s:.2f} s ({len(gen.lines) / max(gen_s, 1e-9):,.0f} events/s)\n"
        )
        return EXIT_OK
    result = run_engine(_counted(gen.lines, shown), pack)
    shown.close()
    sc = score(gen, result.findings, raisable_codes(pack))
    rep = _report(f"montecarlo seed={seed}", gen, sc, gen_s, result.seconds, result.events)
    rep["error_rate"] = args.error_rate
    by_kind: dict[str, dict[str, int]] = {}
    for d in sc.deviations:
        k = by_kind.setdefault(d.injected.kind, {})
        k[d.status] = k.get(d.status, 0) + 1
    rep["by_kind"] = dict(sorted(by_kind.items()))
    rep["behaviours"] = gen.seen
    text = args.json is None or str(args.json) != "-"
    if text:
        _print_scenario(rep, sc, limit=20)
        w = sys.stdout.write
        w("\nby kind: " + ", ".join(f"{k} {v}" for k, v in rep["by_kind"].items()) + "\n")
        w("behaviours: " + ", ".join(f"{k} {v}" for k, v in gen.seen.items()) + "\n")
        _print_throughput(rep)
    if args.json is not None:
        _write_json(args.json, rep)
    if result.engine_errors:
        return EXIT_ENGINE
    return EXIT_MISSED if sc.missed else EXIT_OK


def _counted(lines: list[str], shown: Progress) -> Iterator[str]:
    """The stream's lines, counted on the progress display as the engine takes them."""
    if not shown.enabled:
        yield from lines
        return
    for n, line in enumerate(lines, 1):
        if not n % 5000:
            shown.count("read events", n, len(lines))
        yield line
    shown.count("read events", len(lines), len(lines))


# -- reports -----------------------------------------------------------------------


def _report(
    name: str, gen: Generated, sc: Score, gen_s: float, eval_s: float, events: int
) -> dict[str, Any]:
    return {
        "name": name,
        "patients": gen.patients,
        "events": events,
        "summary": sc.summary(),
        "deviations": [d.to_json() for d in sc.deviations],
        "false_findings": [
            {
                "code": f.code,
                "severity": f.severity.value,
                "patient_id": f.patient_id,
                "ts": rfc3339(f.ts),
                "message": f.message,
                "evidence": f.evidence,
            }
            for f in sc.false_findings
        ],
        "throughput": {
            "generation_s": round(gen_s, 3),
            "evaluation_s": round(eval_s, 3),
            "generation_events_per_s": round(len(gen.lines) / gen_s) if gen_s else None,
            "evaluation_events_per_s": round(events / eval_s) if eval_s else None,
        },
    }


_MARK = {"detected": "ok", "missed": "MISSED", "pending": "pending", "not_injected": "NOT INJECTED"}


def _print_scenario(rep: dict[str, Any], sc: Score, limit: int | None = None) -> None:
    w = sys.stdout.write
    s = rep["summary"]
    verdict = "PASS" if not sc.missed and not sc.false_findings else "FAIL"
    w(f"{verdict}  {rep['name']}: {rep['events']} events, {s['findings']} findings")
    w(f" ({s['info_findings']} info)\n")
    shown = 0
    for d in rep["deviations"]:
        if limit is not None and d["status"] == "detected":
            continue
        shown += 1
        if limit is not None and shown > limit:
            w("      ...\n")
            break
        where = f"cycle {d['cycle']} day {d['day']:g}"
        line = f"      {_MARK[d['status']]:<8} {d['kind']}"
        line += f"{'/' + d['variant'] if d['variant'] else ''} ({where}, {d['patient_id']})"
        if d["found"]:
            line += " -> " + ", ".join(d["found"])
        if d["time_to_detection_h"] is not None:
            line += f" after {d['time_to_detection_h']:g} h"
        if d["missing"]:
            line += " missing " + ", ".join(d["missing"])
        if d["pending"]:
            line += " [no rule yet: " + ", ".join(d["pending"]) + "]"
        w(line + "\n")
    for f in rep["false_findings"][: limit or None]:
        w(f"      FALSE    {f['code']} {f['patient_id']} {f['ts']}: {f['message']}\n")


def _totals(reports: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("deviations", "detected", "missed", "pending", "false_findings", "findings")
    total: dict[str, Any] = {k: sum(r["summary"][k] for r in reports) for k in keys}
    total["scenarios"] = len(reports)
    scorable = total["detected"] + total["missed"]
    total["detection_rate"] = total["detected"] / scorable if scorable else None
    return total


def _print_totals(total: dict[str, Any], packs: dict[tuple[str, str | None], CompiledPack]) -> None:
    rate = total["detection_rate"]
    pct = "n/a" if rate is None else f"{100 * rate:.1f} %"
    versions = ", ".join(
        f"{p.ref.name} {p.ref.version} ({e}{', site ' + p.site if p.site else ''})"
        for (e, _), p in packs.items()
    )
    sys.stdout.write(
        f"\n{total['scenarios']} scenarios, {total['deviations']} deviations: "
        f"{total['detected']} detected, {total['missed']} missed, {total['pending']} pending "
        f"(no rule in the pack yet); {total['false_findings']} false findings; "
        f"detection {pct}; pack {versions}\n"
    )


def _print_throughput(rep: dict[str, Any]) -> None:
    s, t = rep["summary"], rep["throughput"]
    rate = s["detection_rate"]
    pct = "n/a" if rate is None else f"{100 * rate:.1f} %"
    sys.stdout.write(
        f"{rep['patients']} patients, {rep['events']} events; deviations {s['deviations']}: "
        f"{s['detected']} detected, {s['missed']} missed, {s['pending']} pending; "
        f"detection {pct}; false findings {s['false_findings']}; "
        f"mean time to detection {s['mean_time_to_detection_h']} h\n"
        f"generation {t['generation_s']} s ({t['generation_events_per_s']:,} events/s), "
        f"evaluation {t['evaluation_s']} s ({t['evaluation_events_per_s']:,} events/s)\n"
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def _ts_key(line: str) -> str:
    return str(json.loads(line)["ts"])


def _write_stream(path: Path, lines: list[str], fmt: str) -> None:
    """Canonical JSONL, or HL7 v2 for what HL7 can carry plus JSONL for the rest."""
    if fmt == "jsonl":
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return
    from pumpguard.adapters.hl7v2 import Hl7Writer, UnsupportedEvent, frame
    from pumpguard.engine.events import event_adapter

    writers: dict[str, Hl7Writer] = {}
    messages: list[str] = []
    rest: list[str] = []
    for line in lines:
        event = event_adapter.validate_json(line)
        if not event.type.startswith(("pump.", "encounter.")) or event.type in _NOT_HL7:
            rest.append(line)
            continue
        writer = writers.setdefault(event.patient_id, Hl7Writer())
        try:
            rendered = writer.render(event)
        except UnsupportedEvent:
            rendered = []
        # an event that became no message (refused, or held back) is kept in the side file
        if rendered:
            messages += rendered
        else:
            rest.append(line)
    path.write_text(frame(messages, "mllp"), encoding="utf-8")
    side = rest_path(path)
    side.write_text("".join(line + "\n" for line in rest), encoding="utf-8")


def rest_path(out: Path) -> Path:
    """The side file of ``--format hl7``: ``out.hl7`` -> ``out.rest.jsonl``."""
    return out.with_name(out.stem + ".rest.jsonl")


_NOT_HL7 = frozenset(
    {
        # a bag change is written by the HL7 writer only paired with its start under
        # ids X and X#2; a drill's streams (and hot swaps) have no such pair
        "pump.bag_changed",
        "pump.registered",
        "pump.flush",
        "pump.prime",
        "pump.keypad_locked",
        "pump.keypad_unlocked",
        "pump.connection_lost",
        "pump.connection_restored",
    }
)
