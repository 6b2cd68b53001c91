"""``pumpguard compare``: the same history under two packs, editions or site files.

Before a committee changes a parameter (a premedication window, a grace
period), it wants to see what the change would have done to last quarter:
which findings appear, which disappear, which change. A finding is matched
across the runs by patient, code and the events it cites, then by patient,
code and time; its id, message or severity may differ.

Exit status: 0 the two runs agree; 1 some finding appears, disappears or
changes; 2 usage, unreadable input or a pack that does not load.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpguard.engine.findings import Finding
from pumpguard.engine.pack import CompiledPack, load_pack

__all__ = [
    "COMMANDS",
    "Change",
    "Comparison",
    "add_parser",
    "compare_findings",
    "compare_rows",
    "run",
]

COMMANDS = ("compare",)
KINDS = ("appeared", "disappeared", "changed")


@dataclass(frozen=True)
class Change:
    """One finding that differs between run A and run B (``a`` or ``b`` absent: in one only)."""

    kind: str
    patient_id: str
    code: str
    a: Finding | None
    b: Finding | None

    @property
    def when(self) -> str:
        """The finding's time as text (B's if it has one): for sorting and tables."""
        f = self.b or self.a
        return str(f.model_dump(mode="json")["ts"]) if f is not None else ""

    @property
    def what(self) -> str:
        if self.a is None or self.b is None:
            return ""
        diffs = [
            k
            for k in ("ts", "severity", "message", "evidence", "action")
            if getattr(self.a, k) != getattr(self.b, k)
        ]
        return ", ".join(diffs)


@dataclass
class Comparison:
    """Both runs' labels, what changed, and how many findings stayed as they were."""

    a_label: str
    b_label: str
    changes: list[Change] = field(default_factory=list)
    same: dict[str, int] = field(default_factory=dict)

    def by_code(self) -> dict[str, list[int]]:
        """Code -> [appeared, disappeared, changed, same]."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for c in self.changes:
            out[c.code][KINDS.index(c.kind)] += 1
        for code, n in self.same.items():
            out[code][3] += n
        return dict(out)

    def by_patient(self) -> dict[str, list[int]]:
        """Patient -> [appeared, disappeared, changed]."""
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for c in self.changes:
            out[c.patient_id][KINDS.index(c.kind)] += 1
        return dict(out)


def _content(f: Finding) -> tuple[Any, ...]:
    return (f.ts, f.severity, f.message, f.action, tuple(f.evidence), f.rule_id)


def compare_findings(
    a: Sequence[Finding], b: Sequence[Finding], a_label: str = "A", b_label: str = "B"
) -> Comparison:
    """Match A's findings with B's and say which appear, disappear or change."""
    result = Comparison(a_label, b_label)
    left = list(a)
    right = list(b)
    keys = (
        lambda f: (f.patient_id, f.code, f.ts, tuple(f.evidence)),
        lambda f: (f.patient_id, f.code, tuple(f.evidence)),
        lambda f: (f.patient_id, f.code, f.ts),
    )
    for key in keys:
        pool: dict[Any, list[Finding]] = defaultdict(list)
        for f in right:
            pool[key(f)].append(f)
        rest = []
        for f in left:
            match = pool.get(key(f))
            if not match:
                rest.append(f)
                continue
            g = match.pop(0)
            right.remove(g)
            if _content(f) == _content(g):
                result.same[f.code] = result.same.get(f.code, 0) + 1
            else:
                result.changes.append(Change("changed", f.patient_id, f.code, f, g))
        left = rest
    result.changes += [Change("disappeared", f.patient_id, f.code, f, None) for f in left]
    result.changes += [Change("appeared", f.patient_id, f.code, None, f) for f in right]
    result.changes.sort(key=lambda c: (c.patient_id, c.when, c.code))
    return result


def compare_rows(c: Comparison) -> list[tuple[str, str, str, str, str, str]]:
    """One row per change: patient, code, kind, time, and the message in A and in B."""
    rows = []
    for ch in c.changes:
        f = ch.b or ch.a
        assert f is not None
        kind = ch.kind + (f" ({ch.what})" if ch.what else "")
        rows.append(
            (
                ch.patient_id,
                ch.code,
                kind,
                str(f.model_dump(mode="json")["ts"]),
                ch.a.message if ch.a else "-",
                ch.b.message if ch.b else "-",
            )
        )
    return rows


# -- command line ---------------------------------------------------------------


def _pack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pack", type=Path, help="rule pack folder (default: Blincyto)")
    p.add_argument("--edition", help="label edition")
    p.add_argument("--site", type=Path, help="site parameter file")
    p.add_argument(
        "--report", "-o", type=Path, help="also write an HTML report (run A, with the what-if)"
    )
    p.add_argument("--json", type=Path, help="the comparison as JSON ('-' for standard output)")


def add_parser(sub: Any) -> None:
    cp = sub.add_parser(
        "compare",
        help="replay the same input under two packs, editions or site files and diff the findings",
        usage="pumpguard compare INPUT... [--pack A] [--edition E] [--site S] "
        "--against [--pack B] [--edition E] [--site S] [-o report.html] [--json FILE]",
    )
    cp.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    _pack_args(cp)
    cp.add_argument("--config", type=Path, help="adapter configuration (YAML)")
    cp.add_argument(
        "--against",
        nargs=argparse.REMAINDER,
        required=True,
        help="what to compare with: --pack, --edition, --site as for run A",
    )


def _side(args: argparse.Namespace) -> tuple[CompiledPack, str]:
    from pumpguard.rules import default_pack

    pack = load_pack(args.pack or default_pack(), edition=args.edition, site_file=args.site)
    label = f"{pack.ref.name} {pack.ref.version} {pack.edition}"
    if args.site is not None:
        label += f" site {pack.site or args.site.name}"
    if args.pack is not None:
        label += f" ({args.pack})"
    return pack, label


def run(args: argparse.Namespace) -> int:
    from pumpguard import pipeline

    other = argparse.ArgumentParser(prog="pumpguard compare --against", add_help=False)
    _pack_args(other)
    b_args, extra = other.parse_known_args(args.against)
    if extra:
        raise pipeline.UsageError(f"compare --against: unexpected {' '.join(extra)}")
    args.report = args.report or b_args.report
    args.json = args.json or b_args.json
    paths = pipeline.check_inputs(args.inputs)
    pipeline.check_outputs(paths, {"--report": args.report, "--json": args.json})
    pack_a, label_a = _side(args)
    pack_b, label_b = _side(b_args)
    if label_a == label_b and pack_a.ref == pack_b.ref:
        label_b += " (again)"
    runs = []
    with pipeline.materialised(paths) as inputs:
        for pack in (pack_a, pack_b):
            runs.append(
                pipeline.audit(
                    [i.path for i in inputs],
                    pack,
                    out=io.StringIO(),
                    rejects=pipeline.RejectReport(None),
                    config=args.config,
                    labels=[i.label for i in inputs],
                )
            )
        result = compare_findings(runs[0].findings, runs[1].findings, label_a, label_b)
        if args.report is not None:
            from pumpguard.report_cmd import write_report

            write_report(args.report, runs[0].findings, inputs, pack_a, compare=result)
    if args.json is None or str(args.json) != "-":
        _print(result)
    if args.json is not None:
        _write_json(args.json, result)
    return 1 if result.changes else 0


def _print(c: Comparison) -> None:
    w = sys.stdout.write
    w(f"A: {c.a_label}\nB: {c.b_label}\n\n")
    w(f"{'code':34} {'appeared':>9} {'disappeared':>12} {'changed':>8} {'same':>6}\n")
    for code, v in sorted(c.by_code().items()):
        w(f"{code:34} {v[0]:>9} {v[1]:>12} {v[2]:>8} {v[3]:>6}\n")
    w(
        "\nper patient: "
        + ", ".join(f"{p} +{v[0]} -{v[1]} ~{v[2]}" for p, v in sorted(c.by_patient().items()))
        + "\n\n"
    )
    for row in compare_rows(c):
        w(f"{row[0]}  {row[1]}  {row[2]}  {row[3]}\n    A: {row[4]}\n    B: {row[5]}\n")
    if not c.changes:
        w("no finding appears, disappears or changes\n")


def _write_json(path: Path, c: Comparison) -> None:
    data = {
        "a": c.a_label,
        "b": c.b_label,
        "by_code": c.by_code(),
        "by_patient": c.by_patient(),
        "changes": [
            {
                "kind": ch.kind,
                "patient_id": ch.patient_id,
                "code": ch.code,
                "a": ch.a.model_dump(mode="json") if ch.a else None,
                "b": ch.b.model_dump(mode="json") if ch.b else None,
            }
            for ch in c.changes
        ],
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")
