"""Gather what a report shows: findings, the events behind them, their accounting.

Kept apart from the HTML so the numbers can be tested (and reused by
``compare``) without rendering anything.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pumpguard.adapters.base import Reject, drain
from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding, RulePackRef, Severity
from pumpguard.engine.pack import CompiledPack
from pumpguard.report_metrics import Params, Population, digest_events
from pumpguard.report_rates import Compliance, compliance
from pumpguard.report_spc import ControlChart
from pydantic import ValidationError

__all__ = [
    "InputCount",
    "ReportData",
    "gather",
    "load_pack_of",
    "read_events",
    "read_findings",
    "to_json_text",
]


@dataclass(frozen=True)
class InputCount:
    """One input file and what its records became."""

    file: str
    format: str
    records: int | None
    events: int | None
    rejected: int | None


@dataclass
class ReportData:
    """Everything the report renders, computed once."""

    findings: list[Finding]
    population: Population
    pack: RulePackRef | None
    findings_file: str | None
    inputs: list[InputCount] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    compliance: list[Compliance] = field(default_factory=list)
    charts: list[ControlChart] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    compare: Any = None

    @property
    def by_code(self) -> Counter[tuple[str, str]]:
        return Counter((f.code, f.severity.value) for f in self.findings)

    @property
    def by_severity(self) -> dict[str, int]:
        c = Counter(f.severity.value for f in self.findings)
        return {s.value: c.get(s.value, 0) for s in Severity}


def read_findings(path: Path, rejects: list[Reject]) -> list[Finding]:
    """Findings from a JSONL file; chain fields are ignored, a bad line becomes a reject."""
    out = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                out.append(Finding.model_validate_json(raw))
            except ValidationError as exc:
                why = f"not a finding: {exc.errors()[0].get('msg', 'invalid')}"
                rejects.append(Reject(str(path), f"line {n}", why))
    return out


def read_events(
    paths: Sequence[Path],
    labels: Sequence[str] | None,
    counts: list[InputCount],
    rejects: list[Reject],
) -> Iterator[Event]:
    """Every event of the inputs (any format the adapters read); rejects and tallies kept."""
    from pumpguard.pipeline import open_sources

    for source in open_sources(paths, None, labels):
        for record, _ in drain(source):
            if isinstance(record, Reject):
                rejects.append(record)
            else:
                yield record
        tally = getattr(source, "tally", None)
        t = asdict(tally) if tally is not None else {}
        counts.append(
            InputCount(
                source.label, source.name, t.get("records"), t.get("events"), t.get("rejected")
            )
        )


def gather(
    findings: list[Finding],
    events: Sequence[Path],
    *,
    pack: CompiledPack | None,
    labels: Sequence[str] | None = None,
    findings_file: str | None = None,
    rejects: list[Reject] | None = None,
) -> ReportData:
    """Read the events, build the timelines, and compute rates, compliance and charts."""
    from pumpguard.report_rates import headline_charts

    params = Params.from_pack(pack.params) if pack is not None else Params()
    counts: list[InputCount] = []
    rej = list(rejects or [])
    pop = digest_events(read_events(events, labels, counts, rej), params)
    ref = pack.ref if pack is not None else (findings[0].rule_pack if findings else None)
    data = ReportData(findings, pop, ref, findings_file, counts, rej)
    data.compliance = compliance(pop, findings)
    data.charts = headline_charts(pop, findings)
    return data


def load_pack_of(findings: Sequence[Finding], pack_dir: Path | None) -> CompiledPack | None:
    """The pack the findings name (edition, from the first finding), from ``pack_dir``."""
    from pumpguard.engine.pack import load_pack
    from pumpguard.rules import default_pack

    edition = findings[0].rule_pack.edition if findings else None
    return load_pack(pack_dir or default_pack(), edition=edition)


def to_json_text(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` at all, so nothing closes it early."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c")
