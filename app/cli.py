"""The ``pumpguard`` command line: wiring only, no logic of its own.

Exit status (also in the README):

====  ==========================================================
0     done: every record read, no finding at or above --fail-on
2     usage error, unreadable input, or a rule pack that does not load
3     some records were rejected (the rest were evaluated)
4     findings at or above the --fail-on severity
5     a rule could not be evaluated (the engine raised an alert)
====  ==========================================================

When several apply, the highest number wins.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import structlog
from pumpguard import (
    __version__,
    cmd_journal,
    cmd_send,
    cmd_serve,
    compare,
    drill,
    partition,
    pipeline,
    report_cmd,
    verify,
)
from pumpguard.engine.errors import InputError, RulePackError, SinkError
from pumpguard.engine.findings import Finding, Severity, rfc3339
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.logs import configure_logging
from pumpguard.pipeline import bundled_demo_course
from pumpguard.progress import for_terminal
from pumpguard.rules import default_pack

__all__ = ["build_parser", "bundled_demo_course", "main"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REJECTS = 3
EXIT_FINDINGS = 4
EXIT_ENGINE = 5

log = structlog.get_logger("pumpguard")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with our usage status (2) and a clear line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"pumpguard: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _parse_time(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        msg = f"not an RFC 3339 time: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if dt.tzinfo is None:
        msg = f"time {text!r} has no UTC offset; add Z or +hh:mm"
        raise argparse.ArgumentTypeError(msg)
    try:
        return dt.astimezone(UTC).timestamp()  # the UTC instant must exist, as for events
    except OverflowError:
        msg = f"time {text!r} falls outside the years 1 to 9999 in UTC"
        raise argparse.ArgumentTypeError(msg) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pumpguard", description="Safety rules engine for infusion pumps.")
    parser.add_argument("--version", action="version", version=f"pumpguard {__version__}")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rp = sub.add_parser("replay", help="evaluate event logs and write findings")
    rp.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    rp.add_argument("--out", type=Path, help="findings file (default: standard output)")
    rp.add_argument("--edition", help="label edition: seed (default) or label-2024")
    rp.add_argument("--until", type=_parse_time, help="stop the clock at this RFC 3339 time")
    rp.add_argument(
        "--fail-on",
        choices=[s.value for s in Severity],
        help="exit 4 when a finding at or above this severity is raised",
    )
    rp.add_argument("--rejects", type=Path, help="rejects file (default: beside --out)")
    rp.add_argument("--pack", type=Path, default=None, help="rule pack folder (default: Blincyto)")
    rp.add_argument("--site", type=Path, help="site parameter file overriding pack parameters")
    rp.add_argument("--config", type=Path, help="adapter configuration (YAML)")
    rp.add_argument("--report", type=Path, help="also write the HTML audit report here")
    rp.add_argument(
        "--sink",
        choices=["jsonl", "structlog", "hl7", "hl7-cr", "fhir"],
        default="jsonl",
        help="findings as JSONL (default), structlog lines, HL7 ORU^R40 or FHIR DetectedIssue",
    )
    partition.add_arguments(rp)

    ep = sub.add_parser("explain", help="why each finding fired, and the near misses")
    ep.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    ep.add_argument("--edition")
    ep.add_argument("--until", type=_parse_time)
    ep.add_argument("--patient", help="only this patient")
    ep.add_argument("--json", action="store_true", help="JSON instead of text")
    ep.add_argument("--pack", type=Path, default=None)
    ep.add_argument("--site", type=Path)
    ep.add_argument("--config", type=Path)

    cp = sub.add_parser("convert", help="write the canonical events the inputs give (JSONL)")
    cp.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    cp.add_argument("--out", type=Path, help="canonical JSONL (default: standard output)")
    cp.add_argument("--rejects", type=Path, help="rejects file (default: beside --out)")
    cp.add_argument("--config", type=Path, help="adapter configuration (YAML)")
    cp.add_argument("--quiet", action="store_true", help="no progress display")

    rules = sub.add_parser("rules", help="rule pack tools")
    rsub = rules.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    check = rsub.add_parser("check", help="validate a rule pack (every edition)")
    check.add_argument("path", type=Path, nargs="?", default=None)
    check.add_argument("--site", type=Path)
    matrix = rsub.add_parser("matrix", help="traceability: requirement -> rules -> tests")
    matrix.add_argument("--pack", type=Path, default=None)
    matrix.add_argument("--tests", type=Path, default=Path("tests"))

    dp = sub.add_parser("demo", help="replay the bundled example course and summarise")
    dp.add_argument("--out-dir", type=Path, default=Path("pumpguard-demo"))
    drill.add_parser(sub)
    cmd_journal.add_parser(sub)
    cmd_send.add_parser(sub)
    cmd_serve.add_parser(sub)
    for extra in (report_cmd, compare, verify):
        extra.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json_logs=args.log_json)
    try:
        if args.command == "replay":
            return cmd_replay(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "explain":
            return cmd_explain(args)
        if args.command == "convert":
            return cmd_convert(args)
        if args.command == "rules":
            return cmd_rules(args)
        if args.command in drill.COMMANDS:
            return drill.run(args)
        if args.command in cmd_journal.COMMANDS:
            return cmd_journal.run(args)
        if args.command == "send":
            return cmd_send.run(args)
        if args.command == "serve":
            return cmd_serve.run(args)
        for extra in (report_cmd, compare, verify):
            if args.command in extra.COMMANDS:
                return int(extra.run(args))
    except pipeline.UsageError as exc:
        sys.stderr.write(f"pumpguard: error: {exc}\n")
        return EXIT_USAGE
    except RulePackError as exc:
        sys.stderr.write(f"pumpguard: rule pack error: {exc}\n")
        return EXIT_USAGE
    except SinkError as exc:
        sys.stderr.write(f"pumpguard: cannot write output: {exc}\n")
        return EXIT_USAGE
    except (InputError, OSError) as exc:
        sys.stderr.write(f"pumpguard: cannot read input: {exc}\n")
        return EXIT_USAGE
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE  # pragma: no cover


# -- replay ----------------------------------------------------------------------


STDIN = pipeline.STDIN


def _exit_status(result: pipeline.AuditResult, fail_on: str | None) -> int:
    status = EXIT_OK
    if result.rejects.errors:
        status = EXIT_REJECTS
    if fail_on is not None:
        bar = Severity(fail_on).rank
        if any(f.severity.rank >= bar for f in result.findings):
            status = EXIT_FINDINGS
    if result.engine_errors:
        status = EXIT_ENGINE
    return status


def _rejects_path(args: argparse.Namespace) -> Path | None:
    """--rejects, else a rejects file beside --out (FINDINGS.rejects.jsonl), else none.

    ``--out -`` is standard output, as for inputs; ``--rejects -`` is refused, since
    standard output carries the findings (rejects are on standard error anyway).
    """
    if args.out == STDIN:
        args.out = None
    if args.rejects == STDIN:
        msg = "--rejects - would mix rejects into the findings on standard output"
        raise pipeline.UsageError(msg)
    if args.rejects is not None:
        return Path(args.rejects)
    if args.out is not None:
        return Path(args.out).with_name(Path(args.out).stem + ".rejects.jsonl")
    return None


def _load_pack(args: argparse.Namespace) -> CompiledPack:
    return load_pack(args.pack or default_pack(), edition=args.edition, site_file=args.site)


def cmd_replay(args: argparse.Namespace) -> int:
    rejects_path = _rejects_path(args)
    paths = pipeline.check_inputs(args.inputs)
    pipeline.check_outputs(
        paths, {"--out": args.out, "--rejects": rejects_path, "--report": args.report}
    )
    config = pipeline.load_config(args.config)
    scale = partition.scale_from_args(args)
    pack = _load_pack(args)
    with contextlib.ExitStack() as stack:
        inputs = stack.enter_context(pipeline.materialised(paths))
        progress = stack.enter_context(for_terminal(args.quiet))
        out_file = pipeline.open_output(stack, args.out, "findings")
        rejects_file = pipeline.open_output(stack, rejects_path, "rejects")
        result = pipeline.audit(
            [i.path for i in inputs],
            pack,
            out=out_file.stream if out_file else sys.stdout,
            rejects=pipeline.RejectReport(rejects_file.stream if rejects_file else None),
            until=args.until,
            config=config,
            sink_kind=args.sink,
            labels=[i.label for i in inputs],
            scale=scale,
            progress=progress,
        )
        report_cmd.after_replay(args, stack, inputs, pack, result)
    s, report = result.stats, result.rejects
    log.info(
        "replay.done",
        inputs=report.inputs,
        events=s.events_read,
        evaluated=s.evaluated,
        duplicates=s.duplicates,
        after_until=s.after_until,
        rejected=report.errors,
        warnings=report.warnings,
        findings=len(result.findings),
        patients=s.patients,
        engine_errors=result.engine_errors,
        spool_bytes=s.spool_bytes,
        rule_pack=f"{pack.ref.name} {pack.ref.version} ({pack.edition})",
        findings_file=str(args.out) if args.out else "stdout",
        rejects_file=str(rejects_path)
        if rejects_path and report.errors + report.warnings
        else None,
    )
    partition.log_resources(log, scale, result.peak_rss_mb)
    return _exit_status(result, args.fail_on)


# -- demo ------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    course = bundled_demo_course()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    findings_path = out_dir / "findings.jsonl"
    pack = load_pack(default_pack())
    with (
        findings_path.open("w", encoding="utf-8") as out,
        (out_dir / "findings.rejects.jsonl").open("w", encoding="utf-8") as rej,
    ):
        result = pipeline.audit([course], pack, out=out, rejects=pipeline.RejectReport(rej))
    w = sys.stdout.write
    s = result.stats
    w(
        f"pumpguard demo: {course.name}, {s.evaluated} events, {s.patients} patients, "
        f"rule pack {pack.ref.name} {pack.ref.version} (edition {pack.edition})\n\n"
    )
    w(_table(result.findings))
    w(f"\n{len(result.findings)} findings written to {findings_path}\n")
    return EXIT_ENGINE if result.engine_errors else EXIT_OK


def _table(findings: Sequence[Finding]) -> str:
    rows = [("time (UTC)", "patient", "severity", "code", "message")]
    for f in findings:
        rows.append(
            (
                rfc3339(f.ts).replace("T", " ").removesuffix("Z"),
                f.patient_id,
                f.severity.value,
                f.code,
                f.message,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for n, r in enumerate(rows):
        head = "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4]))
        lines.append(f"{head}  {r[4]}")
        if n == 0:
            lines.append("-" * min(160, len(head) + 40))
    return "\n".join(lines) + "\n"


# -- explain ---------------------------------------------------------------------


def cmd_explain(args: argparse.Namespace) -> int:
    """Per patient: each finding with the values that made it, and the near misses."""
    import io
    import json

    paths = pipeline.check_inputs(args.inputs)
    config = pipeline.load_config(args.config)
    pack = _load_pack(args)
    with pipeline.materialised(paths) as inputs:
        result = pipeline.audit(
            [i.path for i in inputs],
            pack,
            out=io.StringIO(),
            rejects=pipeline.RejectReport(None),
            until=args.until,
            config=config,
            explain=True,
            labels=[i.label for i in inputs],
        )
    out = pipeline.explain_report(result, args.patient)
    if args.json:
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(_explain_text(out))
    return EXIT_REJECTS if result.rejects.errors else EXIT_OK


def _fmt_values(values: dict[str, Any]) -> str:
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = round(v, 2)
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def _explain_text(out: dict[str, Any]) -> str:
    lines: list[str] = []
    for pid, items in out.items():
        lines.append(f"Patient {pid}")
        for item in items:
            if item["kind"] == "finding":
                f = item["finding"]
                why = item["why"]
                lines.append(f"  FINDING {f['ts']}  {f['code']} ({f['rule_id']}, {f['severity']})")
                lines.append(f"    {f['message']}")
                opened = why.get("opened_by")
                if opened:
                    lines.append(
                        f"    opened at {opened['at']} by {opened['rule']}: {opened['when']}"
                    )
                    lines.append(f"      with {_fmt_values(opened['values'])}")
                    lines.append(f"    and nothing closed it by {f['ts']}")
                elif why:
                    lines.append(f"    because {why['when']}")
                    lines.append(f"      with {_fmt_values(why['values'])}")
                lines.append(f"    evidence: {', '.join(f['evidence'])}; cites {f['citation']}")
            else:
                lines.append(f"  NEAR MISS {item['ts']}  {item['rule_id']}: {item['message']}")
                lines.append(f"    not met: {item['not_met']}  ({_fmt_values(item['values'])})")
        lines.append("")
    if not out:
        lines.append("No findings and no near misses.")
    return "\n".join(lines) + "\n"


# -- convert ---------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    """The canonical events exactly as the engine would see them, rejects beside them."""
    from pumpguard.adapters.convert import convert

    rejects_path = _rejects_path(args)
    paths = pipeline.check_inputs(args.inputs)
    pipeline.check_outputs(paths, {"--out": args.out, "--rejects": rejects_path})
    cfg = pipeline.load_config(args.config)
    summary: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        inputs = stack.enter_context(pipeline.materialised(paths))
        out_file = pipeline.open_output(stack, args.out, "canonical events")
        rej_file = pipeline.open_output(stack, rejects_path, "rejects")
        rej = _StderrTee(rej_file.stream if rej_file else None)
        shown = stack.enter_context(for_terminal(args.quiet))
        written, failed = convert(
            [i.path for i in inputs],
            out_file.stream if out_file else sys.stdout,
            rej,  # type: ignore[arg-type]
            cfg,
            labels=[i.label for i in inputs],
            summary=summary,
            progress=(lambda n: shown.count("convert", n)) if shown.enabled else None,
        )
    log.info(
        "convert.done",
        inputs=summary,
        events=written,
        rejected=failed,
        out=str(args.out) if args.out else "stdout",
    )
    return EXIT_REJECTS if failed else EXIT_OK


class _StderrTee:
    """A text stream that copies reject lines to standard error and, if given, a file."""

    def __init__(self, file: IO[str] | None) -> None:
        self.file = file

    def write(self, text: str) -> int:
        sys.stderr.write(text)
        if self.file is not None:
            self.file.write(text)
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


# -- rules -----------------------------------------------------------------------


def cmd_rules(args: argparse.Namespace) -> int:
    if args.rules_command == "check":
        return _rules_check(args)
    return _rules_matrix(args)


def _rules_check(args: argparse.Namespace) -> int:
    path = args.path or default_pack()
    for pack in pipeline.check_pack(path, site_file=args.site):
        edition = pack.edition
        sys.stdout.write(
            f"ok  {pack.ref.name} {pack.ref.version} edition {edition}: {len(pack.rules)} rules, "
            f"{len(pack.spec.requirements)} requirements, sha256 {pack.ref.sha256[:16]}\n"
        )
    return EXIT_OK


def _rules_matrix(args: argparse.Namespace) -> int:
    pack = load_pack(args.pack or default_pack())
    tests = pipeline.covering_tests(list(pack.spec.requirements), args.tests)
    missing = 0
    w = sys.stdout.write
    for req, text in pack.spec.requirements.items():
        rules = [r.id for r in pack.rules if r.spec.requirement == req]
        codes = sorted(
            {
                a.raise_.code
                for r in pack.rules
                if r.spec.requirement == req
                for a in r.actions
                if a.raise_
            }
        )
        w(f"{req}: {text}\n")
        w(f"  rules: {', '.join(rules) or 'NONE'}\n")
        w(f"  codes: {', '.join(codes) or '-'}\n")
        w(f"  tests: {len(tests.get(req, []))}: {', '.join(tests.get(req, [])) or 'NONE'}\n")
        missing += (not rules) + (not tests.get(req))
    if missing:
        sys.stderr.write(f"pumpguard: {missing} requirement(s) without a rule or a test\n")
        return EXIT_FINDINGS
    return EXIT_OK
