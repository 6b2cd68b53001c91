"""``pumpguard report`` and the extras of ``replay`` (the seal, ``--report``).

Wiring only: the numbers come from :mod:`pumpguard.report_build`, the page
from :mod:`pumpguard.report_render`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pumpguard.adapters.base import Reject
from pumpguard.adapters.jsonl import SEAL_SUFFIX, ChainState, seal_record
from pumpguard.engine.findings import Finding
from pumpguard.engine.pack import CompiledPack, load_pack

__all__ = ["COMMANDS", "add_parser", "after_replay", "run", "write_report"]

COMMANDS = ("report",)


def add_parser(sub: Any) -> None:
    rp = sub.add_parser(
        "report",
        help="write the committee's HTML audit report from findings and the events",
        description="One self-contained HTML file (opens offline): summary, rates, compliance, "
        "weekly control charts and a timeline per patient.",
    )
    rp.add_argument("findings", type=Path, metavar="FINDINGS.jsonl")
    rp.add_argument(
        "--events",
        type=Path,
        nargs="+",
        required=True,
        metavar="INPUT",
        help="the inputs the findings came from (denominators and timelines)",
    )
    rp.add_argument("-o", "--out", type=Path, required=True, help="the HTML file to write")
    rp.add_argument("--pack", type=Path, help="rule pack folder (default: Blincyto)")
    rp.add_argument("--edition", help="label edition (default: the findings')")
    rp.add_argument("--site", type=Path, help="site parameter file the findings were raised under")


def _integrity(
    findings_path: Path | None, pack: CompiledPack | None, findings: Sequence[Finding]
) -> list[str]:
    notes = []
    if findings_path is not None:
        from pumpguard.verify import verify_findings

        v = verify_findings(findings_path)
        if v.ok:
            seal = json.loads(findings_path.with_name(findings_path.name + SEAL_SUFFIX).read_text())
            notes.append(
                f"{findings_path.name}: hash chain and seal intact ({v.lines} findings, "
                f"last sha256 {seal.get('last_sha256')})"
            )
        else:
            notes += [f"{findings_path.name}: ALTERED: {p}" for p in v.problems]
    if pack is not None:
        other = {f.rule_pack.sha256 for f in findings} - {pack.ref.sha256}
        if other:
            notes.append(
                f"the findings name another rule pack (sha256 {sorted(other)[0][:16]}) "
                f"than the one loaded ({pack.ref.sha256[:16]})"
            )
    return notes


def write_report(
    out: Path,
    findings: list[Finding],
    inputs: Sequence[Any],
    pack: CompiledPack | None,
    *,
    findings_path: Path | None = None,
    integrity: Sequence[str] = (),
    rejects: list[Reject] | None = None,
    compare: Any = None,
) -> Path:
    """Build and write one report; ``inputs`` are pipeline ``Input`` records."""
    from pumpguard.pipeline import open_output
    from pumpguard.report_build import gather
    from pumpguard.report_render import render_html

    data = gather(
        findings,
        [i.path for i in inputs],
        pack=pack,
        labels=[i.label for i in inputs],
        findings_file=str(findings_path) if findings_path else None,
        rejects=rejects,
    )
    data.integrity = [*integrity, *_integrity(findings_path, pack, findings)]
    data.compare = compare
    text = render_html(data)
    with contextlib.ExitStack() as stack:
        target = open_output(stack, out, "report")
        assert target is not None
        target.stream.write(text)
    return out


def run(args: argparse.Namespace) -> int:
    from pumpguard import pipeline
    from pumpguard.report_build import read_findings
    from pumpguard.rules import default_pack

    paths = pipeline.check_inputs([args.findings, *args.events])
    pipeline.check_outputs(paths, {"--out": args.out})
    rejects: list[Reject] = []
    findings = read_findings(args.findings, rejects)
    for r in rejects:
        sys.stderr.write(f"pumpguard: {r}\n")
    edition = args.edition or (findings[0].rule_pack.edition if findings else None)
    pack = load_pack(args.pack or default_pack(), edition=edition, site_file=args.site)
    t0 = time.perf_counter()
    with pipeline.materialised(paths[1:]) as inputs:
        write_report(args.out, findings, inputs, pack, findings_path=args.findings, rejects=rejects)
    size = args.out.stat().st_size
    sys.stderr.write(
        f"pumpguard report: {args.out} ({size / 1e6:.1f} MB, "
        f"{len(findings)} findings) in {time.perf_counter() - t0:.1f} s\n"
    )
    return 3 if rejects else 0


def after_replay(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    inputs: Sequence[Any],
    pack: CompiledPack,
    result: Any,
) -> None:
    """The seal beside a JSONL findings file, and the report when ``--report`` is given."""
    from pumpguard.pipeline import open_output

    sealed = ""
    if args.out is not None and args.sink == "jsonl":
        chain = ChainState()
        for f in result.findings:
            chain.next_line(f)
        seal = open_output(stack, args.out.with_name(args.out.name + SEAL_SUFFIX), "seal")
        assert seal is not None
        seal.stream.write(seal_record(chain, pack.ref))
        sealed = (
            f"{args.out.name}: sealed at this run ({chain.count} findings, last sha256 "
            f"{chain.last_sha256})"
        )
    if getattr(args, "report", None) is not None:
        write_report(
            args.report,
            result.findings,
            inputs,
            pack,
            integrity=[sealed] if sealed else ["findings not sealed (not a JSONL file)"],
        )
