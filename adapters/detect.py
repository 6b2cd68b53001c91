"""Pick the reader for an input file by extension, and by content where that is ambiguous.

Raises :class:`~pumpguard.engine.errors.ParseError` (the CLI's exit 2) when a
file cannot be read at all or its format cannot be told; everything finer
grained (a bad message, a bad row) is a reject yielded by the source itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pumpguard.adapters.base import EventSource, Record, Reject, unknown_fields_warning
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.csv_source import CsvSource
from pumpguard.adapters.fhir import FhirSource, FhirXmlSource, is_fhir_json
from pumpguard.adapters.hl7v2 import Hl7Source
from pumpguard.adapters.jsonl import JsonlSource
from pumpguard.engine.errors import ParseError
from pumpguard.engine.events import event_adapter
from pumpguard.engine.gate import describe_validation_error
from pydantic import ValidationError

__all__ = ["CanonicalJsonSource", "detect_format", "open_source"]

_HL7_SUFFIXES = {".hl7", ".txt", ".mllp", ".er7", ".msg"}


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError as exc:
        msg = f"{path}: cannot be read ({exc.strerror or exc})"
        raise ParseError(msg, source=str(path)) from exc


def _looks_hl7(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf\x0b \t\r\n")
    return text.startswith((b"MSH", b"FHS", b"BHS"))


def _first_json_line(path: Path) -> object:
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    return json.loads(raw.decode("utf-8-sig"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return None
    return None


def detect_format(path: Path) -> str:
    """The format name: jsonl, fhir-ndjson, fhir-json, json, hl7, csv or fhir-xml."""
    suffix = path.suffix.lower()
    head = _head(path)
    if suffix in (".jsonl", ".ndjson"):
        return "fhir-ndjson" if is_fhir_json(_first_json_line(path)) else "jsonl"
    if suffix == ".json":
        try:
            obj = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            # One event per line saved as .json is still canonical JSONL.
            first = _first_json_line(path)
            if isinstance(first, dict):
                return "fhir-ndjson" if is_fhir_json(first) else "jsonl"
            msg = f"{path}: .json file is not valid JSON"
            raise ParseError(msg, source=str(path)) from None
        return "fhir-json" if is_fhir_json(obj) else "json"
    if suffix == ".csv":
        return "csv"
    if suffix == ".xml":
        return "fhir-xml"
    if suffix in _HL7_SUFFIXES or _looks_hl7(head):
        if not _looks_hl7(head):
            msg = f"{path}: does not start with an MSH segment; not HL7 v2"
            raise ParseError(msg, source=str(path))
        return "hl7"
    if head.lstrip().startswith(b"{"):
        first = _first_json_line(path)
        if isinstance(first, dict):
            return "fhir-ndjson" if is_fhir_json(first) else "jsonl"
    msg = f"{path}: format not recognised (HL7 v2, FHIR JSON/NDJSON, canonical JSONL or CSV)"
    raise ParseError(msg, source=str(path))


def open_source(path: Path, config: AdapterConfig | None = None) -> EventSource:
    """The source that reads ``path``; ParseError if the format cannot be told."""
    path = Path(path)
    kind = detect_format(path)
    label = str(path)
    if kind == "jsonl":
        return JsonlSource(path, label=label)
    if kind == "json":
        return CanonicalJsonSource(path, label=label)
    if kind in ("fhir-json", "fhir-ndjson"):
        return FhirSource(path, label=label, config=config, ndjson=kind == "fhir-ndjson")
    if kind == "fhir-xml":
        return FhirXmlSource(path, label=label)
    if kind == "hl7":
        return Hl7Source(path, label=label, config=config)
    source = CsvSource(path, config=config, label=label)
    # Fail now, not mid-replay, when no mapping fits the header.
    if not (config and config.csv_mappings):
        msg = f"{path}: CSV needs a column mapping (csv_mappings in the adapter config)"
        raise ParseError(msg, source=label)
    return source


class CanonicalJsonSource(EventSource):
    """Canonical events as one JSON document: an object, or an array of objects."""

    name = "json"

    def __init__(self, path: str | Path, *, label: str | None = None) -> None:
        self.path = Path(path)
        self.label = label or str(path)

    def __iter__(self) -> Iterator[Record]:
        obj = json.loads(self.path.read_bytes().decode("utf-8-sig"))
        items = obj if isinstance(obj, list) else [obj]
        for i, item in enumerate(items, start=1):
            position = f"item {i}"
            try:
                event = event_adapter.validate_json(json.dumps(item))
            except ValidationError as exc:
                yield Reject(self.label, position, describe_validation_error(exc))
                continue
            warning = unknown_fields_warning(event, self.label, position)
            if warning is not None:
                yield warning
            yield event
