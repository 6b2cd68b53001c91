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
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import structlog
from pumpguard import __version__
from pumpguard.adapters.base import STOPPED, EventSource, Reject, drain
from pumpguard.adapters.jsonl import JsonlFindingSink
from pumpguard.engine.core import Engine
from pumpguard.engine.errors import InputError, RulePackError, SinkError
from pumpguard.engine.findings import Finding, Severity
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.engine.replay import Replay
from pumpguard.logs import configure_logging
from pumpguard.rules import default_pack

if TYPE_CHECKING:
    from pumpguard.adapters.config import AdapterConfig
    from pumpguard.adapters.sinks import AtomicTextFile

__all__ = ["main"]

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

    rp.add_argument(
        "--sink",
        choices=["jsonl", "structlog", "hl7", "hl7-cr", "fhir"],
        default="jsonl",
        help="findings as JSONL (default), structlog lines, HL7 ORU^R40 or FHIR DetectedIssue",
    )

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
    for module in _plugins():
        module.add_parser(sub)
    return parser


def _plugins() -> list[Any]:
    """Subcommands that live in their own modules (drills, conversion): add_parser + run."""
    import importlib

    found = []
    for name in ("pumpguard.drill", "pumpguard.convert_cmd"):
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


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
        for module in _plugins():
            if args.command in getattr(module, "COMMANDS", ()):
                return int(module.run(args))
    except _UsageError as exc:
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


class _UsageError(Exception):
    """A command line that cannot be run as given (exit 2, before anything is written)."""


STDIN = Path("-")


@dataclass(frozen=True)
class _Input:
    """One input as the user named it, and the file that holds its bytes."""

    path: Path
    label: str


def _check_inputs(paths: Sequence[Path]) -> list[Path]:
    """Refuse, by what they are, inputs that are no readable file; ``-`` is standard input."""
    from pumpguard.adapters.detect import not_a_file

    if sum(1 for p in paths if p == STDIN) > 1:
        raise _UsageError("standard input (-) can be named only once")
    for path in paths:
        if path == STDIN:
            if sys.stdin is None or sys.stdin.isatty():
                msg = "standard input (-) is a terminal; pipe or redirect a file into it"
                raise _UsageError(msg)
            continue
        why = not_a_file(path)
        if why is not None:
            msg = f"{path}: {why}"
            raise InputError(msg, source=str(path))
    return list(paths)


@contextlib.contextmanager
def _materialised(paths: Sequence[Path]) -> Iterator[list[_Input]]:
    """The inputs as files: standard input is copied to a temporary file first.

    Detection reads the head of a file and the readers open it again, which
    a pipe does not allow; the copy is removed when the run ends.
    """
    spool: Path | None = None
    try:
        found = []
        for path in paths:
            if path != STDIN:
                found.append(_Input(path, str(path)))
                continue
            fd, name = tempfile.mkstemp(prefix="pumpguard-stdin-")
            spool = Path(name)
            with os.fdopen(fd, "wb") as fh:
                stream = getattr(sys.stdin, "buffer", None)
                if stream is not None:
                    while chunk := stream.read(1 << 20):
                        fh.write(chunk)
                else:  # a text stream without bytes underneath (tests, embedding)
                    fh.write(sys.stdin.read().encode("utf-8"))
            found.append(_Input(spool, "<stdin>"))
        yield found
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _check_outputs(inputs: Sequence[Path], outputs: dict[str, Path | None]) -> None:
    """Refuse an output that names an input, or another output: never destroy data."""
    named = [(flag, path) for flag, path in outputs.items() if path is not None]
    for flag, target in named:
        for source in inputs:
            if source != STDIN and _same_file(source, target):
                msg = (
                    f"{flag} {target} is also an input: writing it would destroy that input; "
                    "choose another file"
                )
                raise _UsageError(msg)
    for i, (flag, target) in enumerate(named):
        for other_flag, other in named[i + 1 :]:
            if _same_file(target, other):
                msg = f"{flag} and {other_flag} name the same file ({target}); choose two files"
                raise _UsageError(msg)


def _load_config(path: Path | None) -> AdapterConfig | None:
    if path is None:
        return None
    import yaml
    from pumpguard.adapters.config import AdapterConfig

    try:
        return AdapterConfig.from_yaml(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValidationError is a ValueError
        msg = f"adapter config {path} does not load: {exc}"
        raise _UsageError(msg) from exc


def _open_sources(
    paths: Sequence[Path], config: Path | AdapterConfig | None, labels: Sequence[str] | None = None
) -> list[EventSource]:
    """One source per input, chosen by extension or content (ParseError: exit 2)."""
    from pumpguard.adapters.detect import not_a_file, open_source

    for path in paths:
        why = not_a_file(path)
        if why is not None:
            msg = f"{path}: {why}"
            raise InputError(msg, source=str(path))
    cfg = _load_config(config) if isinstance(config, Path) or config is None else config
    names = labels or [str(p) for p in paths]
    return [open_source(p, cfg, label=name) for p, name in zip(paths, names, strict=True)]


class _RejectReport:
    """Rejects to standard error and a JSONL file; counts errors apart from warnings.

    It also keeps what each input gave (its tally), for the summary line: a
    user sees every record of every file accounted for.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.errors = 0
        self.warnings = 0
        self.inputs: list[dict[str, Any]] = []

    def add(self, reject: Reject) -> None:
        if reject.level == "error":
            self.errors += 1
        else:
            self.warnings += 1
        sys.stderr.write(f"pumpguard: {reject}\n")
        if self.stream is not None:
            self.stream.write(reject.to_json() + "\n")

    def summarise(self, label: str, source: EventSource, stopped_at: str | None) -> None:
        tally = getattr(source, "tally", None)
        entry: dict[str, Any] = {"file": label, "format": source.name}
        if tally is not None:
            entry.update(asdict(tally))
        else:  # a source that keeps no tally: say so rather than print zeros
            entry.update(records=None, events=None, warned=None, rejected=None)
        if stopped_at is not None:
            entry["stopped_at"] = stopped_at
        self.inputs.append(entry)


def _read_all(
    sources: Sequence[EventSource], report: _RejectReport
) -> Iterator[tuple[Any, str, str]]:
    """(event, input label, position) from every source; rejects go to the report.

    A source that fails costs the rest of that source (a reject says where it
    stopped); the other inputs are still read.
    """
    for source in sources:
        label = str(getattr(source, "label", None) or getattr(source, "path", source.name))
        stopped: str | None = None
        for record, position in drain(source):
            if isinstance(record, Reject):
                report.add(record)
                if record.reason.startswith(STOPPED):
                    stopped = position
                continue
            yield record, label, position
        report.summarise(label, source, stopped)


def run_replay(
    inputs: Sequence[Path],
    out: IO[str],
    rejects: _RejectReport,
    pack: CompiledPack,
    *,
    until: float | None = None,
    config: Path | AdapterConfig | None = None,
    explain: bool = False,
    sink_kind: str = "jsonl",
    labels: Sequence[str] | None = None,
) -> tuple[list[Finding], Engine, Replay]:
    sources = _open_sources(inputs, config, labels)
    engine = Engine(pack, explain=explain)
    replay = Replay(engine, until=until)
    try:
        for event, label, position in _read_all(sources, rejects):
            replay.add(event, label, position)
    except BaseException:
        replay.close()
        raise

    def on_reject(src: str, position: str, reason: str, event_id: str | None) -> None:
        rejects.add(Reject(src, position, reason, event_id=event_id))

    sink = _sink(sink_kind, out)
    findings: list[Finding] = []
    try:
        for finding in replay.run(on_reject):
            sink.write(finding)
            findings.append(finding)
    finally:
        replay.close()  # also when a sink fails mid-run: the spool is not left to the GC
    sink.close()
    return findings, engine, replay


def _sink(kind: str, out: IO[str]) -> Any:
    if kind == "jsonl":
        return JsonlFindingSink(out)
    from pumpguard.adapters.sinks import make_sink

    return make_sink(kind, out)  # type: ignore[arg-type]


def _exit_status(findings: list[Finding], engine: Engine, rejects: int, fail_on: str | None) -> int:
    status = EXIT_OK
    if rejects:
        status = EXIT_REJECTS
    if fail_on is not None:
        bar = Severity(fail_on).rank
        if any(f.severity.rank >= bar for f in findings):
            status = EXIT_FINDINGS
    if engine.errors:
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
        raise _UsageError("--rejects - would mix rejects into the findings on standard output")
    if args.rejects is not None:
        return Path(args.rejects)
    if args.out is not None:
        return Path(args.out).with_name(Path(args.out).stem + ".rejects.jsonl")
    return None


def _output(stack: contextlib.ExitStack, path: Path | None, what: str) -> AtomicTextFile | None:
    """An output written beside its target and put in place only if the run completes."""
    if path is None:
        return None
    from pumpguard.adapters.sinks import AtomicTextFile

    return stack.enter_context(AtomicTextFile(path, what))


def cmd_replay(args: argparse.Namespace) -> int:
    rejects_path = _rejects_path(args)
    paths = _check_inputs(args.inputs)
    _check_outputs(paths, {"--out": args.out, "--rejects": rejects_path})
    config = _load_config(args.config)
    pack = load_pack(args.pack or default_pack(), edition=args.edition, site_file=args.site)
    with contextlib.ExitStack() as stack:
        inputs = stack.enter_context(_materialised(paths))
        out_file = _output(stack, args.out, "findings")
        rejects_file = _output(stack, rejects_path, "rejects")
        report = _RejectReport(rejects_file.stream if rejects_file else None)
        findings, engine, replay = run_replay(
            [i.path for i in inputs],
            out_file.stream if out_file else sys.stdout,
            report,
            pack,
            until=args.until,
            config=config,
            sink_kind=args.sink,
            labels=[i.label for i in inputs],
        )
    s = replay.stats
    log.info(
        "replay.done",
        inputs=report.inputs,
        events=s.events_read,
        evaluated=s.evaluated,
        duplicates=s.duplicates,
        after_until=s.after_until,
        rejected=report.errors,
        warnings=report.warnings,
        findings=len(findings),
        patients=s.patients,
        engine_errors=len(engine.errors),
        rule_pack=f"{pack.ref.name} {pack.ref.version} ({pack.edition})",
        findings_file=str(args.out) if args.out else "stdout",
        rejects_file=str(rejects_path)
        if rejects_path and report.errors + report.warnings
        else None,
    )
    return _exit_status(findings, engine, report.errors, args.fail_on)


# -- demo ------------------------------------------------------------------------


def bundled_demo_course() -> Path:
    """The example course shipped with the package."""
    return Path(__file__).resolve().parent / "data" / "demo_course.jsonl"


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
        report = _RejectReport(rej)
        findings, engine, replay = run_replay([course], out, report, pack)
    w = sys.stdout.write
    s = replay.stats
    w(
        f"pumpguard demo: {course.name}, {s.evaluated} events, {s.patients} patients, "
        f"rule pack {pack.ref.name} {pack.ref.version} (edition {pack.edition})\n\n"
    )
    w(_table(findings))
    w(f"\n{len(findings)} findings written to {findings_path}\n")
    return EXIT_ENGINE if engine.errors else EXIT_OK


def _table(findings: Sequence[Finding]) -> str:
    rows = [("time (UTC)", "patient", "severity", "code", "message")]
    for f in findings:
        rows.append(
            (
                f.ts.replace("T", " ").removesuffix("Z"),
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

    paths = _check_inputs(args.inputs)
    config = _load_config(args.config)
    pack = load_pack(args.pack or default_pack(), edition=args.edition, site_file=args.site)
    report = _RejectReport(None)
    with _materialised(paths) as inputs:
        findings, engine, _ = run_replay(
            [i.path for i in inputs],
            io.StringIO(),
            report,
            pack,
            until=args.until,
            config=config,
            explain=True,
            labels=[i.label for i in inputs],
        )
    patients = sorted({f.patient_id for f in findings} | {n.patient_id for n in engine.near_misses})
    if args.patient:
        patients = [p for p in patients if p == args.patient]
    out: dict[str, Any] = {}
    for pid in patients:
        items: list[tuple[str, dict[str, Any]]] = []
        for f in findings:
            if f.patient_id == pid:
                why = engine.explanations.get(f.finding_id, {})
                items.append(
                    (f.ts, {"kind": "finding", "finding": f.model_dump(mode="json"), "why": why})
                )
        for n in engine.near_misses:
            if n.patient_id == pid:
                items.append(
                    (
                        n.ts,
                        {
                            "kind": "near_miss",
                            "rule_id": n.rule_id,
                            "ts": n.ts,
                            "event_id": n.event_id,
                            "message": n.message,
                            "not_met": n.because,
                            "values": n.values,
                        },
                    )
                )
        out[pid] = [item for _, item in sorted(items, key=lambda x: x[0])]
    if args.json:
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(_explain_text(out))
    return EXIT_REJECTS if report.errors else EXIT_OK


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
    paths = _check_inputs(args.inputs)
    _check_outputs(paths, {"--out": args.out, "--rejects": rejects_path})
    cfg = _load_config(args.config)
    summary: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        inputs = stack.enter_context(_materialised(paths))
        out_file = _output(stack, args.out, "canonical events")
        rej_file = _output(stack, rejects_path, "rejects")
        rej = _StderrTee(rej_file.stream if rej_file else None)
        written, failed = convert(
            [i.path for i in inputs],
            out_file.stream if out_file else sys.stdout,
            rej,  # type: ignore[arg-type]
            cfg,
            labels=[i.label for i in inputs],
            summary=summary,
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
    first = load_pack(path, site_file=args.site)
    for edition in first.spec.editions:
        pack = load_pack(path, edition=edition, site_file=args.site)
        Engine(pack)  # registers every rule with durable-rules: a rule it refuses fails here
        sys.stdout.write(
            f"ok  {pack.ref.name} {pack.ref.version} edition {edition}: {len(pack.rules)} rules, "
            f"{len(pack.spec.requirements)} requirements, sha256 {pack.ref.sha256[:16]}\n"
        )
    return EXIT_OK


def _rules_matrix(args: argparse.Namespace) -> int:
    import re

    import yaml

    pack = load_pack(args.pack or default_pack())
    tests: dict[str, list[str]] = {r: [] for r in pack.spec.requirements}
    tests_dir: Path = args.tests
    expected = tests_dir / "scenarios" / "expected.yaml"
    if expected.is_file():
        for name, spec in sorted((yaml.safe_load(expected.read_text()) or {}).items()):
            tests.setdefault(spec["requirement"], []).append(f"scenarios/{name}")
    if tests_dir.is_dir():
        for f in sorted(tests_dir.glob("test_rule_*.py")):
            for req in sorted(set(re.findall(r"R-[A-Z]+(?:-[A-Z]+)?", f.read_text()))):
                if req in tests:
                    tests[req].append(f.name)
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
