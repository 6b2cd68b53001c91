"""One place that composes a run: inputs, sources, pack, engine, replay and sinks.

The CLI parses arguments, calls one function here, prints what it returns and
chooses the exit status; it wires nothing itself. Embedding code (a site's own
audit script, the tests) calls the same functions, so a run is composed the
same way whoever starts it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pumpguard.adapters.base import STOPPED, EventSource, Reject, drain
from pumpguard.adapters.jsonl import JsonlFindingSink
from pumpguard.engine.core import Engine
from pumpguard.engine.errors import InputError
from pumpguard.engine.findings import Finding, rfc3339
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.engine.replay import Replay, ReplayStats
from pumpguard.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    from pumpguard.adapters.config import AdapterConfig
    from pumpguard.adapters.sinks import AtomicTextFile
    from pumpguard.partition import Scale

__all__ = [
    "RULE_TESTS_MANIFEST",
    "STDIN",
    "AuditResult",
    "Input",
    "RejectReport",
    "UsageError",
    "audit",
    "bundled_demo_course",
    "check_inputs",
    "check_outputs",
    "check_pack",
    "covering_tests",
    "explain_report",
    "load_config",
    "materialised",
    "open_output",
    "open_sources",
]

STDIN = Path("-")
"""How an input (or ``--out``) names standard input (or output)."""


class UsageError(Exception):
    """A run that cannot be started as asked (the CLI exits 2, before anything is written)."""


@dataclass(frozen=True)
class Input:
    """One input as the user named it, and the file that holds its bytes."""

    path: Path
    label: str


def bundled_demo_course() -> Path:
    """The example course shipped with the package."""
    return Path(__file__).resolve().parent / "data" / "demo_course.jsonl"


# -- inputs and outputs ----------------------------------------------------------


def check_inputs(paths: Sequence[Path]) -> list[Path]:
    """Refuse, by what they are, inputs that are no readable file; ``-`` is standard input."""
    from pumpguard.adapters.detect import not_a_file

    if sum(1 for p in paths if p == STDIN) > 1:
        raise UsageError("standard input (-) can be named only once")
    for path in paths:
        if path == STDIN:
            if sys.stdin is None or sys.stdin.isatty():
                msg = "standard input (-) is a terminal; pipe or redirect a file into it"
                raise UsageError(msg)
            continue
        why = not_a_file(path)
        if why is not None:
            msg = f"{path}: {why}"
            raise InputError(msg, source=str(path))
    return list(paths)


@contextlib.contextmanager
def materialised(paths: Sequence[Path]) -> Iterator[list[Input]]:
    """The inputs as files: standard input is copied to a temporary file first.

    Detection reads the head of a file and the readers open it again, which
    a pipe does not allow; the copy is removed when the run ends.
    """
    spool: Path | None = None
    try:
        found = []
        for path in paths:
            if path != STDIN:
                found.append(Input(path, str(path)))
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
            found.append(Input(spool, "<stdin>"))
        yield found
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_outputs(inputs: Sequence[Path], outputs: dict[str, Path | None]) -> None:
    """Refuse an output that names an input, or another output: never destroy data."""
    named = [(flag, path) for flag, path in outputs.items() if path is not None]
    for flag, target in named:
        for source in inputs:
            if source != STDIN and _same_file(source, target):
                msg = (
                    f"{flag} {target} is also an input: writing it would destroy that input; "
                    "choose another file"
                )
                raise UsageError(msg)
    for i, (flag, target) in enumerate(named):
        for other_flag, other in named[i + 1 :]:
            if _same_file(target, other):
                msg = f"{flag} and {other_flag} name the same file ({target}); choose two files"
                raise UsageError(msg)


def open_output(stack: contextlib.ExitStack, path: Path | None, what: str) -> AtomicTextFile | None:
    """An output written beside its target and put in place only if the run completes."""
    if path is None:
        return None
    from pumpguard.adapters.sinks import AtomicTextFile

    return stack.enter_context(AtomicTextFile(path, what))


def load_config(path: Path | None) -> AdapterConfig | None:
    """The adapter configuration file, if one is named (a bad one is a usage error)."""
    if path is None:
        return None
    import yaml
    from pumpguard.adapters.config import AdapterConfig

    try:
        return AdapterConfig.from_yaml(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValidationError is a ValueError
        msg = f"adapter config {path} does not load: {exc}"
        raise UsageError(msg) from exc


def open_sources(
    paths: Sequence[Path], config: Path | AdapterConfig | None, labels: Sequence[str] | None = None
) -> list[EventSource]:
    """One source per input, chosen by extension or content (ParseError: exit 2)."""
    from pumpguard.adapters.detect import not_a_file, open_source

    for path in paths:
        why = not_a_file(path)
        if why is not None:
            msg = f"{path}: {why}"
            raise InputError(msg, source=str(path))
    cfg = load_config(config) if isinstance(config, Path) or config is None else config
    names = labels or [str(p) for p in paths]
    return [open_source(p, cfg, label=name) for p, name in zip(paths, names, strict=True)]


# -- rejects ---------------------------------------------------------------------


class RejectReport:
    """Rejects to standard error and a JSONL file; counts errors apart from warnings.

    It also keeps what each input gave (its tally), for the summary line: a
    user sees every record of every file accounted for.
    """

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.errors = 0
        self.warnings = 0
        self.inputs: list[dict[str, Any]] = []
        self.listener: Callable[[], None] | None = None
        """Told of each reject (a progress display counting records read)."""

    def add(self, reject: Reject) -> None:
        """Report one reject (the same record the source or the replay made)."""
        if self.listener is not None:
            self.listener()
        if reject.level == "error":
            self.errors += 1
        else:
            self.warnings += 1
        sys.stderr.write(f"pumpguard: {reject}\n")
        if self.stream is not None:
            self.stream.write(reject.to_json() + "\n")

    def summarise(self, label: str, source: EventSource, stopped_at: str | None) -> None:
        """Keep one input's tally for the summary line."""
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
    sources: Sequence[EventSource], report: RejectReport
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


# -- audit -----------------------------------------------------------------------


@dataclass
class AuditResult:
    """What one audit run read, found and refused."""

    findings: list[Finding]
    rejects: RejectReport
    stats: ReplayStats
    engine: Engine | None = field(default=None, repr=False)
    """The one engine of an in-memory run (explain); a partitioned run has one per worker."""
    engine_error_count: int = 0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    """Peak resident memory of this process (``parent``) and of each worker, in MB."""

    @property
    def engine_errors(self) -> int:
        """Rules that could not be evaluated (each also raised an alert finding)."""
        return self.engine_error_count


def _sink(kind: str, out: IO[str]) -> Any:
    if kind == "jsonl":
        return JsonlFindingSink(out)
    from pumpguard.adapters.sinks import make_sink

    return make_sink(kind, out)  # type: ignore[arg-type]


def audit(
    inputs: Sequence[Path],
    pack: CompiledPack,
    *,
    out: IO[str],
    rejects: RejectReport,
    until: float | None = None,
    config: Path | AdapterConfig | None = None,
    explain: bool = False,
    sink_kind: str = "jsonl",
    labels: Sequence[str] | None = None,
    scale: Scale | None = None,
    progress: Progress = NULL_PROGRESS,
) -> AuditResult:
    """Replay ``inputs`` through ``pack``: findings to a ``sink_kind`` sink on ``out``.

    The replay is partitioned by patient (:mod:`pumpguard.partition`) and runs
    where ``scale`` says (default: this process); ``explain`` needs the one
    engine's memory of why, so it replays in memory on one engine instead.
    """
    sources = open_sources(inputs, config, labels)
    if explain:
        return _audit_in_memory(sources, pack, out, rejects, until, sink_kind)
    from pumpguard.partition import Scale as _Scale
    from pumpguard.partition import replay

    if progress.enabled:
        rejects.listener = progress.rejected
    outcome = replay(
        _read_all(sources, rejects),
        pack,
        until=until,
        scale=scale or _Scale(),
        on_reject=rejects.add,
        progress=progress,
    )
    progress.close()
    sink = _sink(sink_kind, out)
    for finding in outcome.findings:
        sink.write(finding)
    sink.close()
    return AuditResult(
        outcome.findings,
        rejects,
        outcome.stats,
        engine_error_count=outcome.engine_errors,
        peak_rss_mb=outcome.peak_rss_mb,
    )


def _audit_in_memory(
    sources: Sequence[EventSource],
    pack: CompiledPack,
    out: IO[str],
    rejects: RejectReport,
    until: float | None,
    sink_kind: str,
) -> AuditResult:
    """One engine over one spool, keeping the engine (and its explanations) for the caller."""
    engine = Engine(pack, explain=True)
    replay = Replay(engine, until=until)
    try:
        for event, label, position in _read_all(sources, rejects):
            replay.add(event, label, position)
    except BaseException:
        replay.close()
        raise
    sink = _sink(sink_kind, out)
    findings: list[Finding] = []
    try:
        for finding in replay.run(rejects.add):
            sink.write(finding)
            findings.append(finding)
    finally:
        replay.close()  # also when a sink fails mid-run: the spool is not left to the GC
    sink.close()
    return AuditResult(findings, rejects, replay.stats, engine, len(engine.errors))


# -- explain ---------------------------------------------------------------------


def explain_report(result: AuditResult, patient: str | None = None) -> dict[str, Any]:
    """Per patient, in time order: each finding with why it fired, and the near misses."""
    findings, engine = result.findings, result.engine
    if engine is None:
        msg = "explain needs an in-memory audit (audit(..., explain=True))"
        raise UsageError(msg)
    patients = sorted({f.patient_id for f in findings} | {n.patient_id for n in engine.near_misses})
    if patient:
        patients = [p for p in patients if p == patient]
    out: dict[str, Any] = {}
    for pid in patients:
        items: list[tuple[str, dict[str, Any]]] = []
        for f in findings:
            if f.patient_id == pid:
                why = engine.explanations.get(f.finding_id, {})
                items.append(
                    (
                        rfc3339(f.ts),
                        {"kind": "finding", "finding": f.model_dump(mode="json"), "why": why},
                    )
                )
        for n in engine.near_misses:
            if n.patient_id == pid:
                near = {
                    "kind": "near_miss",
                    "rule_id": n.rule_id,
                    "ts": n.ts,
                    "event_id": n.event_id,
                    "message": n.message,
                    "not_met": n.because,
                    "values": n.values,
                }
                items.append((n.ts, near))
        out[pid] = [item for _, item in sorted(items, key=lambda x: x[0])]
    return out


# -- rule packs -----------------------------------------------------------------


def check_pack(path: Path, *, site_file: Path | None = None) -> Iterator[CompiledPack]:
    """The pack in each of its editions, each registered with an engine (RulePackError if not)."""
    first = load_pack(path, site_file=site_file)
    for edition in first.spec.editions:
        pack = load_pack(path, edition=edition, site_file=site_file)
        Engine(pack)  # registers every rule with durable-rules: a rule it refuses fails here
        yield pack


# -- traceability ----------------------------------------------------------------

RULE_TESTS_MANIFEST = "rule_tests.yaml"
"""In ``tests/``: which requirements each ``rules/test_rule_*.py`` module covers."""


def covering_tests(requirements: Sequence[str], tests_dir: Path) -> dict[str, list[str]]:
    """Requirement -> the tests that cover it, read from data, never from test source.

    The scenario manifest (``scenarios/expected.yaml``) names each scenario's
    requirement; ``rule_tests.yaml`` names each rule test module's.
    """
    import yaml

    tests: dict[str, list[str]] = {r: [] for r in requirements}
    expected = tests_dir / "scenarios" / "expected.yaml"
    if expected.is_file():
        for name, spec in sorted((yaml.safe_load(expected.read_text()) or {}).items()):
            tests.setdefault(spec["requirement"], []).append(f"scenarios/{name}")
    manifest = tests_dir / RULE_TESTS_MANIFEST
    if manifest.is_file():
        for module, covered in sorted((yaml.safe_load(manifest.read_text()) or {}).items()):
            for req in sorted(set(covered)):
                if req in tests:
                    tests[req].append(module)
    return tests
