"""Pick the reader for an input file by extension, and by content where that is ambiguous.

Raises :class:`~pumpguard.engine.errors.ParseError` (the CLI's exit 2) only when
a file cannot be read at all or its format cannot be told; a file whose format
is known but whose content is broken (bad JSON, junk before the first MSH) is
handed to its reader, which rejects what it must with a position.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pumpguard.adapters.base import (
    BytesSource,
    EventSource,
    Record,
    Reject,
    Tally,
    unknown_fields_warning,
)
from pumpguard.adapters.common import describe_invalid, is_fhir_json, load_json_document
from pumpguard.adapters.jsonl import JsonlSource
from pumpguard.engine.errors import ParseError
from pumpguard.engine.events import Event, event_adapter
from pydantic import ValidationError

if TYPE_CHECKING:
    from pumpguard.adapters.config import AdapterConfig

__all__ = ["CanonicalJsonSource", "EmptySource", "detect_format", "not_a_file", "open_source"]

_HL7_SUFFIXES = {".hl7", ".mllp", ".er7", ".msg"}
"""Always HL7: the reader reports an empty file or junk before the first MSH itself."""
_SNIFF = 64 * 1024


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file, in words; None when it can."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file (name the files in it)"
    if stat.S_ISFIFO(mode):
        return (
            "is a named pipe (FIFO), which can be read only once; "
            "send it to standard input instead: pumpguard replay - < PIPE"
        )
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file (use - for standard input)"
    return "is not a regular file"


def _head(path: Path, size: int = _SNIFF) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError as exc:
        msg = f"{path}: cannot be read ({exc.strerror or exc})"
        raise ParseError(msg, source=str(path)) from exc


def _looks_hl7(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf\x0b \t\r\n")
    return text.startswith((b"MSH", b"FHS", b"BHS"))


def _has_msh(head: bytes) -> bool:
    """An MSH segment at the start of some line: a capture with prose before its messages."""
    return any(
        line.lstrip(b"\x0b \t").startswith(b"MSH|") for line in head.replace(b"\r", b"\n").split()
    )


def _looks_json_lines(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _first_json_line(path: Path, tries: int = 100) -> object:
    """The first line among the first ``tries`` that parses as JSON (a broken first line
    must not turn FHIR NDJSON into canonical JSONL); None when none does."""
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                return load_json_document(raw)
            except ParseError:
                tries -= 1
                if tries <= 0:
                    return None
    return None


def _lines_kind(path: Path) -> str:
    return "fhir-ndjson" if is_fhir_json(_first_json_line(path)) else "jsonl"


def is_blank(path: Path) -> bool:
    """True for a file with nothing but white space (or nothing at all) in it."""
    with path.open("rb") as fh:
        first = True
        while chunk := fh.read(1 << 16):
            if first:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")
                first = False
            if chunk.strip():
                return False
    return True


def detect_format(path: Path, label: str | None = None) -> str:
    """The format name: jsonl, fhir-ndjson, fhir-json, json, hl7, csv or fhir-xml."""
    suffix = path.suffix.lower()
    head = _head(path)
    name = label or str(path)
    if suffix in (".jsonl", ".ndjson"):
        return _lines_kind(path)
    if suffix == ".json":
        try:
            obj = load_json_document(path.read_bytes())
        except ParseError:
            # One event per line saved as .json is still canonical JSONL; anything
            # else is a broken document its reader rejects with the reason.
            first = _first_json_line(path, tries=1)  # a pretty-printed document has JSON lines too
            return _lines_kind(path) if isinstance(first, dict) else "json"
        return "fhir-json" if is_fhir_json(obj) else "json"
    if suffix == ".csv":
        return "csv"
    if suffix == ".xml":
        return "fhir-xml"
    if suffix in _HL7_SUFFIXES or _looks_hl7(head):
        return "hl7"
    if _looks_json_lines(head):
        return _lines_kind(path)
    if _has_msh(head):
        return "hl7"
    if suffix == ".txt":
        msg = f"{name}: neither HL7 v2 (no MSH segment) nor JSON lines; not HL7 v2"
        raise ParseError(msg, source=name)
    msg = f"{name}: format not recognised (HL7 v2, FHIR JSON/NDJSON, canonical JSONL or CSV)"
    raise ParseError(msg, source=name)


def open_source(
    path: Path, config: AdapterConfig | None = None, *, label: str | None = None
) -> EventSource:
    """The source that reads ``path``; ParseError if the format cannot be told.

    The HL7, FHIR and CSV readers are imported only for their own files: a
    replay of canonical JSONL pays none of their start-up.
    """
    path = Path(path)
    label = label or str(path)
    try:
        blank = is_blank(path)
    except OSError as exc:
        msg = f"{label}: cannot be read ({exc.strerror or exc})"
        raise ParseError(msg, source=label) from exc
    if blank:
        return EmptySource(label)
    kind = detect_format(path, label)
    if kind == "jsonl":
        return JsonlSource(path, label=label)
    if kind == "json":
        return CanonicalJsonSource(path, label=label)
    if kind in ("fhir-json", "fhir-ndjson"):
        from pumpguard.adapters.fhir import FhirSource

        return FhirSource(path, label=label, config=config, ndjson=kind == "fhir-ndjson")
    if kind == "fhir-xml":
        from pumpguard.adapters.fhir import FhirXmlSource

        return FhirXmlSource(path, label=label)
    if kind == "hl7":
        from pumpguard.adapters.hl7v2 import Hl7Source

        return Hl7Source(path, label=label, config=config)
    # Fail now, not mid-replay, when no mapping can be tried at all.
    if not (config and config.csv_mappings):
        msg = f"{label}: CSV needs a column mapping (csv_mappings in the adapter config)"
        raise ParseError(msg, source=label)
    from pumpguard.adapters.csv_source import CsvSource

    return CsvSource(path, config=config, label=label)


class EmptySource(EventSource):
    """A file with nothing in it: one reject says so, whatever its extension promised.

    An empty input is most often the wrong file or a failed export; it is
    reported (and fails the run) rather than passing as a clean one.
    """

    name = "empty"

    def __init__(self, label: str) -> None:
        self.label = label
        self.tally = Tally()

    def __iter__(self) -> Iterator[Record]:
        self.position = "line 1"
        yield Reject(self.label, "line 1", "empty file: no records to read")


class CanonicalJsonSource(BytesSource):
    """Canonical events as one JSON document: an object, or an array of objects.

    A record is one array item (or the one object); a document that is not
    JSON at all is one record, rejected.
    """

    name = "json"

    def __init__(
        self, path: str | Path | None = None, *, data: bytes | None = None, label: str | None = None
    ) -> None:
        super().__init__(path, data=data, label=label)

    def __iter__(self) -> Iterator[Record]:
        self.tally = Tally()
        raw = self.read_bytes()
        self.position = "document"
        try:
            obj = load_json_document(raw)
        except ParseError as exc:
            obj = exc
        if isinstance(obj, ParseError):
            self.tally.note("reject")
            yield Reject(self.label, obj.position or "document", obj.message)
            return
        items = obj if isinstance(obj, list) else [obj]
        if not items:
            yield Reject(self.label, "document", "an empty JSON array: no events", level="warning")
        for i, item in enumerate(items, start=1):
            self.position = f"item {i}"
            records = self._item(item)
            self.tally.note("event" if isinstance(records[-1], Event) else "reject")
            yield from records

    def _item(self, item: object) -> list[Record]:
        position = self.position
        try:
            event: Event = event_adapter.validate_json(json.dumps(item))
        except ValidationError as exc:
            return [Reject(self.label, position, describe_invalid(exc))]
        except (RecursionError, ValueError):
            return [Reject(self.label, position, "not a canonical event (nested too deeply)")]
        warning = unknown_fields_warning(event, self.label, position)
        return [event] if warning is None else [warning, event]
