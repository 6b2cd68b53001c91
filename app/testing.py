"""Small public helpers for testing a site's own rule files and feeds.

A pharmacy informatics team changing a site file wants a test like::

    from pumpguard import Engine, default_pack, load_pack
    from pumpguard.testing import CapturingSink, EventBuilder, MemorySource, replay

    pack = load_pack(default_pack(), site_file="our-site.yaml")
    b = EventBuilder("P-1")  # ids, UTC times and the pump filled in, each record validated
    findings = replay(pack, MemorySource([b.record("pump.infusion_started", t0, ...), ...]))
    assert [f.code for f in findings] == ["REINITIATION_UNSUPERVISED"]

They use the same pieces as ``pumpguard replay``: the replay's ordering, its
duplicate handling and its end-of-input clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pumpguard.adapters.base import EventSource, FindingSink, Record, Reject, Tally
from pumpguard.engine.builder import EventBuilder
from pumpguard.engine.core import Engine
from pumpguard.engine.errors import InputError
from pumpguard.engine.events import parse_event
from pumpguard.engine.findings import Finding
from pumpguard.engine.gate import describe_validation_error
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.replay import Replay
from pydantic import ValidationError

__all__ = ["CapturingSink", "EventBuilder", "MemorySource", "replay"]


class MemorySource(EventSource):
    """Canonical events given in memory (dicts or JSON text), with the usual fates."""

    name = "memory"

    def __init__(self, records: Iterable[Mapping[str, Any] | str], label: str = "memory") -> None:
        self._records = list(records)
        self.label = label
        self.position = ""
        self.tally = Tally()

    def __iter__(self) -> Iterator[Record]:
        self.tally = Tally()
        for n, raw in enumerate(self._records, 1):
            self.position = f"item {n}"
            try:
                event = parse_event(raw if isinstance(raw, str) else dict(raw))
            except ValidationError as exc:
                self.tally.note("reject")
                yield Reject(self.label, self.position, describe_validation_error(exc))
                continue
            self.tally.note("event")
            yield event


class CapturingSink(FindingSink):
    """Keeps every finding it is given, in order, for assertions."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def write(self, finding: Finding) -> None:
        self.findings.append(finding)

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


def replay(
    pack: CompiledPack, *sources: EventSource, sink: FindingSink | None = None
) -> list[Finding]:
    """Replay sources as ``pumpguard replay`` does; a reject raises InputError for the test."""
    run = Replay(Engine(pack))
    out = sink if sink is not None else CapturingSink()

    def refuse(reject: Reject) -> None:
        raise InputError(str(reject), source=reject.source, position=reject.position)

    found: list[Finding] = []
    try:
        for source in sources:
            with source:
                for record in source:
                    if isinstance(record, Reject):
                        raise InputError(
                            str(record), source=record.source, position=record.position
                        )
                    run.add(record, getattr(source, "label", source.name), source.position)
        for finding in run.run(refuse):
            out.write(finding)
            found.append(finding)
    finally:
        run.close()
    return found
