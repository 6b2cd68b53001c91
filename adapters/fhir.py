"""FHIR R4 in: MedicationAdministration, Encounter, AdverseEvent and graded Observations.

Resources come one per file, in a Bundle, or as NDJSON. Each is validated with
fhir.resources' R4B models (fhir.resources defaults to R5, and R4 has no package
of its own), then mapped. The models do not check terminology, so what we read
(status, units, classes, grades) is checked against explicit tables; the
per-resource mappers live in ``fhir_resources``.

R5-shaped resources are common in current examples (US Core's Encounter has
``class`` as a list and ``actualPeriod``). An Encounter in that shape is read
with the R5 model and a warning says so; other R5 shapes are rejected, naming
the elements that gave them away.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pumpguard.adapters.base import BytesSource, EventSource, Record, Reject, Tally, fate_of
from pumpguard.adapters.common import (
    clip,
    is_fhir_json,
    json_kind,
    load_json,
    load_json_document,
    lone_surrogate,
    quote,
)
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.fhir_resources import _Mapper
from pumpguard.engine.errors import InputError, ParseError

__all__ = ["FhirSource", "FhirXmlSource", "is_fhir_json"]


class FhirSource(BytesSource):
    """FHIR JSON: a resource, a Bundle, or NDJSON (one resource a line)."""

    name = "fhir"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        data: bytes | None = None,
        label: str | None = None,
        config: AdapterConfig | None = None,
        ndjson: bool | None = None,
    ) -> None:
        super().__init__(path, data=data, label=label)
        self.config = config or AdapterConfig()
        self.binder = Binder(self.config)
        self.ndjson = ndjson

    def __iter__(self) -> Iterator[Record]:
        self.tally = Tally()
        raw = self.read_bytes()
        ndjson = self.ndjson
        if ndjson is None:
            ndjson = self.path is not None and self.path.suffix.lower() in (".ndjson", ".jsonl")
        if ndjson:
            yield from self._lines(raw)
            return
        self.position = "document"
        try:
            obj = load_json_document(raw)
        except ParseError as exc:
            obj = exc
        if isinstance(obj, ParseError):
            yield from self._count([Reject(self.label, obj.position or "document", obj.message)])
            return
        if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
            yield from self._bundle(obj)
            return
        self.position = "resource 1"
        yield from self._count(self._one(obj, "resource 1"))

    def _lines(self, raw: bytes) -> Iterator[Record]:
        """NDJSON: each line is one record, decoded on its own so one bad byte costs one line."""
        for lineno, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            self.position = position = f"line {lineno}"
            try:
                text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
                obj = load_json(text)
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8: {exc.reason} at byte {exc.start}"
                yield from self._count([Reject(self.label, position, reason)])
                continue
            except ParseError as exc:
                yield from self._count([Reject(self.label, position, exc.message)])
                continue
            yield from self._count(self._one(obj, position))

    def _bundle(self, bundle: dict[str, Any]) -> Iterator[Record]:
        """One record per entry; a Bundle without a usable entry list is one record."""
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            reason = f"Bundle.entry is {json_kind(entries)}, not a list of entries"
            yield from self._count([Reject(self.label, "Bundle.entry", reason)])
            return
        if not entries:
            warning = Reject(self.label, "Bundle", "Bundle has no entries", level="warning")
            yield from self._count([warning])
            return
        for i, entry in enumerate(entries, start=1):
            self.position = position = f"entry {i}"
            if not isinstance(entry, dict):
                reason = f"Bundle entry is {json_kind(entry)}, not an object"
                yield from self._count([Reject(self.label, position, reason)])
                continue
            url = entry.get("fullUrl")
            url = url if isinstance(url, str) else None
            yield from self._count(self._one(entry.get("resource"), position, url))

    def _count(self, records: list[Record]) -> list[Record]:
        self.tally.note(fate_of(records))
        return records

    # ------------------------------------------------------------------ dispatch

    def _one(self, obj: Any, position: str, full_url: str | None = None) -> list[Record]:
        if not is_fhir_json(obj):
            return [Reject(self.label, position, "not a FHIR resource (no resourceType)")]
        damaged = lone_surrogate(obj) or lone_surrogate(full_url)
        if damaged is not None:
            return [Reject(self.label, position, damaged)]
        try:
            return _Mapper(self, obj, position, full_url).run()
        except InputError as exc:
            return [Reject(self.label, position, exc.message)]
        except Exception as exc:
            # A shape the mapper did not foresee: one resource lost, said loudly, the
            # rest of the file still read. Never a silent skip, never the whole run.
            reason = (
                f"{clip(obj['resourceType'])} could not be mapped: {type(exc).__name__}: "
                f"{quote(str(exc))} (a defect in pumpguard; please report it)"
            )
            return [Reject(self.label, position, reason)]


class FhirXmlSource(EventSource):
    """FHIR XML is not read in v1: fhir.resources needs lxml for it, which we do not ship.

    The file still gets one clear reject naming the resource, and when the
    resource mixes R4 and R5 element names (an interim build) the reject says so.
    """

    name = "fhir-xml"

    def __init__(self, path: str | Path, *, label: str | None = None) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        self.tally = Tally()

    def __iter__(self) -> Iterator[Record]:
        # The document is one record, and it is always rejected (with the best reason).
        self.tally = Tally()
        self.tally.note("reject")
        self.position = "document"
        try:
            root = ElementTree.fromstring(self.path.read_bytes())
        except ElementTree.ParseError as exc:
            yield Reject(self.label, "document", f"not well-formed XML: {clip(str(exc))}")
            return
        kind = clip(root.tag.rsplit("}", 1)[-1], 80)
        children = {child.tag.rsplit("}", 1)[-1] for child in root}
        reason = (
            f"FHIR XML ({kind}) is not read: pumpguard reads FHIR JSON (the XML parser of "
            "fhir.resources needs lxml, not a dependency); convert it to JSON"
        )
        r4 = children & {
            "medicationReference",
            "medicationCodeableConcept",
            "context",
            "reasonCode",
        }
        r5 = children & {"encounter", "occurenceDateTime", "occurencePeriod", "medication"}
        if kind == "MedicationAdministration" and r4 and r5:
            reason += (
                f". It also mixes R5 elements ({', '.join(sorted(r5))}) with R4 ones "
                f"({', '.join(sorted(r4))}): an interim build that is neither R4 nor R5"
            )
        yield Reject(self.label, "document", reason)
