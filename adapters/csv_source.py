"""Vendor CSV exports in, through a column mapping written in YAML (no code per vendor).

Audits start from whatever the pump server exports. A mapping names which
column holds the time, the event kind and each canonical field, and for every
number the unit it is in: the unit is always stated (a fixed unit, or a column
that carries it) and converted explicitly into the canonical one, because a
"rate" column in mL/h and one in mcg/h look the same in a spreadsheet.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pumpguard.adapters.base import BytesSource, Record, Reject, Tally
from pumpguard.adapters.common import describe_invalid, make_event, quote
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.timestamps import check_zone_name, localize, zone_named
from pumpguard.adapters.units import UnitError, convert, normalise_unit
from pumpguard.engine.errors import BindingError, InputError, ParseError
from pumpguard.engine.events import EVENT_TYPES
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = ["ColumnSpec", "CsvMapping", "CsvSource", "select_mapping"]

# canonical field suffix → canonical unit (spec/events.md: units are in the names)
_UNIT_SUFFIX = {
    "_ml_h": "mL/h",
    "_mcg_day": "mcg/day",
    "_mcg_ml": "mcg/mL",
    "_ml": "mL",
    "_kg": "kg",
    "_cm": "cm",
    "_m2": "m2",
    "_mg": "mg",
    "_h": "h",
}
_BOOL_FIELDS = {"lockable", "alarms", "cleared", "preservative", "line_flushed", "aspirated_first"}
_INT_FIELDS = {"cycle", "grade"}
_HEADER_BYTES = 64 * 1024
_UNDECODED = re.compile("[\udc80-\udcff]")
"""A byte the encoding could not decode, kept by ``surrogateescape``."""
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def _canonical_unit(name: str) -> str | None:
    for suffix, unit in _UNIT_SUFFIX.items():
        if name.endswith(suffix):
            return unit
    return None


class ColumnSpec(BaseModel):
    """Where one canonical field comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str | None = None
    value: str | None = None
    """A constant instead of a column."""
    unit: str | None = None
    unit_column: str | None = None
    values: dict[str, str] = Field(default_factory=dict)
    """Vendor value → canonical value; a value not listed is rejected, not passed through."""
    format: str | None = None
    """strptime format for time columns (default: ISO 8601)."""

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' or 'value'")
        return self


class CsvMapping(BaseModel):
    """One vendor's export layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    delimiter: str = ","
    encoding: str = "utf-8"
    """The export's character encoding (``latin-1``, ``cp1252``...); UTF-8 unless stated.

    A byte the encoding cannot decode rejects its row: the encoding is stated,
    never guessed from the bytes.
    """
    time_zone: str | None = None
    ts: ColumnSpec
    type: ColumnSpec
    event_id: ColumnSpec | None = None
    fields: dict[str, ColumnSpec] = Field(default_factory=dict)

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            msg = f"delimiter must be one character, not {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            msg = f"unknown encoding {value!r} (use a Python codec name like 'latin-1')"
            raise ValueError(msg) from None
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        return check_zone_name(value)

    @field_validator("fields")
    @classmethod
    def _units_stated(cls, fields: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for name, spec in fields.items():
            target = _canonical_unit(name)
            if target is None:
                continue
            if spec.unit is None and spec.unit_column is None:
                msg = f"field {name} is a number in {target}: state its 'unit' or 'unit_column'"
                raise ValueError(msg)
            if spec.unit is not None and normalise_unit(spec.unit) is None:
                msg = f"field {name}: unit {spec.unit!r} is not one pumpguard converts"
                raise ValueError(msg)
        return fields

    @property
    def columns(self) -> set[str]:
        """Every column the mapping reads (a file must have them all to match)."""
        specs = [self.ts, self.type, *self.fields.values()]
        if self.event_id is not None:
            specs.append(self.event_id)
        cols = {s.column for s in specs if s.column}
        return cols | {s.unit_column for s in specs if s.unit_column}

    def decode(self, raw: bytes) -> str:
        """The text, with each undecodable byte kept as a lone surrogate for its row to reject."""
        codec = "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding
        return raw.decode(codec, errors="surrogateescape")

    def header(self, raw: bytes) -> list[str]:
        """The first non-blank line's column names, read with this mapping's encoding."""
        text = io.StringIO(self.decode(raw[:_HEADER_BYTES]), newline="")
        for row in csv.reader(text, delimiter=self.delimiter):
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row]
        return []

    @classmethod
    def from_yaml(cls, path: str | Path) -> CsvMapping:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls.model_validate(data)


def select_mapping(header: list[str], mappings: list[CsvMapping]) -> CsvMapping:
    """The one mapping whose columns are all in the header; ParseError otherwise."""
    present = set(header)
    hits = [m for m in mappings if m.columns <= present]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        names = ", ".join(m.name for m in mappings) or "none configured"
        msg = f"no CSV mapping matches the header {quote(header)} (mappings: {names})"
        raise ParseError(msg)
    msg = f"several CSV mappings match the header: {', '.join(m.name for m in hits)}"
    raise ParseError(msg)


def _choose_mapping(raw: bytes, mappings: list[CsvMapping]) -> CsvMapping:
    """The one mapping whose columns its own delimiter and encoding find in the header."""
    hits = [m for m in mappings if m.columns <= set(m.header(raw))]
    if len(hits) == 1:
        return hits[0]
    if hits:
        msg = f"several CSV mappings match the header: {', '.join(m.name for m in hits)}"
        raise ParseError(msg)
    line = raw[:_HEADER_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
    line = next((x for x in line.splitlines() if x.strip()), "")
    names = ", ".join(f"{m.name} (delimiter {m.delimiter!r})" for m in mappings)
    msg = f"no CSV mapping matches the header {quote(line)} (mappings: {names or 'none'})"
    used = {m.delimiter for m in mappings}
    seen = [d for d in (",", ";", "\t", "|") if d in line and d not in used]
    if seen:
        msg += f"; the header is split by {seen[0]!r}: is the delimiter wrong?"
    raise ParseError(msg)


def _load_mappings(config: AdapterConfig) -> list[CsvMapping]:
    """Every configured mapping, or a ParseError naming the one that does not load."""
    found = []
    for path in config.csv_mappings:
        try:
            found.append(CsvMapping.from_yaml(path))
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            msg = f"CSV mapping {path} does not load: {exc}"
            raise ParseError(msg, source=str(path)) from exc
    return found


class _Lines:
    """The physical lines of a text, counted, for a csv reader to pull from.

    Counting here rather than trusting ``reader.line_num`` lets a row that
    failed be skipped to its end and a fresh reader carry on with true numbers.
    """

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.number = 0
        self._quotes = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        self._quotes += line.count('"')
        return line

    def mark(self) -> int:
        """Start a record here; its first line's number."""
        self._quotes = 0
        return self.number + 1

    def skip_open_quote(self) -> None:
        """Consume lines until the quotes opened since :meth:`mark` are closed."""
        while self._quotes % 2:
            try:
                next(self)
            except StopIteration:
                return


def _count_rows(text: str) -> int:
    """How many non-blank rows follow the header (for a file none of whose rows can be read)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            rows += 1
            continue
        rows += any(cell.strip() for cell in row)
    return max(rows - 1, 0)


class CsvSource(BytesSource):
    """Rows of a CSV export as canonical events; each bad row is a reject with its place.

    A record is one non-blank row; its position names its row number (the
    header is row 1) and the physical line it starts on, which differ once a
    quoted cell spans lines.
    """

    name = "csv"

    def __init__(
        self,
        path: str | Path | None = None,
        mapping: CsvMapping | None = None,
        *,
        data: bytes | None = None,
        config: AdapterConfig | None = None,
        label: str | None = None,
        mappings: list[CsvMapping] | None = None,
    ) -> None:
        """``mapping`` fixes the layout; else the header picks one of ``mappings``, which
        default to the configuration's ``csv_mappings`` files (loaded here, so a mapping
        that does not load is refused before any row is read)."""
        super().__init__(path, data=data, label=label)
        self._stem = self.path.stem if self.path is not None else self.label
        self.config = config or AdapterConfig()
        self.mapping = mapping
        if mapping is not None:
            mappings = [mapping]
        self._mappings = mappings if mappings is not None else _load_mappings(self.config)
        self.binder = Binder(self.config)

    def __iter__(self) -> Iterator[Record]:
        self.tally = Tally()
        raw = self.read_bytes()
        self.position = "line 1"
        if not raw.strip():
            yield Reject(self.label, "line 1", "empty file: no header and no rows")
            return
        try:
            mapping = self.mapping or _choose_mapping(raw, self._mappings)
        except ParseError as exc:
            rows = _count_rows(raw.decode("utf-8", errors="surrogateescape"))
            for _ in range(rows):
                self.tally.note("reject")
            yield Reject(self.label, "line 1", f"{exc.message}; its {rows} row(s) are not read")
            return
        zone_name = mapping.time_zone or self.config.time_zone
        zone = zone_named(zone_name)
        yield from self._rows(mapping, mapping.decode(raw), zone)

    def _rows(self, mapping: CsvMapping, text: str, zone: ZoneInfo | None) -> Iterator[Record]:
        lines = _Lines(text)
        reader = csv.reader(lines, delimiter=mapping.delimiter)
        header: list[str] | None = None
        rowno = 0
        while True:
            start = lines.mark()
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                # The reader stops mid-record; skip to the record's end so the next
                # row is read from its own first line, not from inside a quoted cell.
                lines.skip_open_quote()
                reader = csv.reader(lines, delimiter=mapping.delimiter)
                rowno += 1
                self.position = position = f"row {rowno} (line {start})"
                self.tally.note("reject")
                yield Reject(self.label, position, f"row cannot be split into cells: {exc}")
                continue
            if not any(cell.strip() for cell in row):
                continue
            rowno += 1
            self.position = position = f"row {rowno} (line {start})"
            if header is None:
                header = [cell.strip() for cell in row]
                twice = sorted({c for c in header if header.count(c) > 1} & mapping.columns)
                if twice:
                    rows = _count_rows(text)
                    for _ in range(rows):
                        self.tally.note("reject")
                    reason = f"column(s) {', '.join(twice)} appear twice in the header; "
                    reason += f"which one holds the value is not guessed; its {rows} row(s) "
                    reason += "are not read"
                    yield Reject(self.label, position, reason)
                    return
                continue
            try:
                record = self._row(mapping, self._cells(mapping, header, row), rowno, zone)
            except InputError as exc:
                self.tally.note("reject")
                yield Reject(self.label, position, exc.message)
                continue
            self.tally.note("event")
            yield record
        if header is not None and rowno == 1:
            yield Reject(self.label, "line 1", "a header and no rows: no events", level="warning")

    def _cells(
        self, mapping: CsvMapping, header: list[str], row: list[str]
    ) -> dict[str, str | None]:
        """The row by column name; a row that does not fit the header is refused whole."""
        if len(row) != len(header):
            msg = f"row has {len(row)} cells, the header {len(header)}; not guessed which is which"
            raise InputError(msg)
        joined = "".join(row)
        if "\x00" in joined:
            col = next(h for h, cell in zip(header, row, strict=True) if "\x00" in cell)
            msg = f"a NUL byte in column {quote(col)}: a binary or damaged export, not read"
            raise InputError(msg)
        bad = _UNDECODED.search(joined)
        if bad is not None:
            byte = ord(bad.group()) - 0xDC00
            col = next(h for h, cell in zip(header, row, strict=True) if _UNDECODED.search(cell))
            msg = (
                f"byte 0x{byte:02x} in column {quote(col)} is not {mapping.encoding}; "
                "state the export's encoding in the CSV mapping (encoding: latin-1, cp1252...)"
            )
            raise InputError(msg)
        return dict(zip(header, row, strict=True))

    def _cell(self, spec: ColumnSpec, row: dict[str, str | None]) -> str:
        if spec.value is not None:
            return spec.value
        return (row.get(spec.column or "") or "").strip()

    def _row(
        self, mapping: CsvMapping, row: dict[str, str | None], rowno: int, zone: ZoneInfo | None
    ) -> Record:
        raw_type = self._cell(mapping.type, row)
        etype = mapping.type.values.get(raw_type, raw_type if not mapping.type.values else "")
        if etype not in EVENT_TYPES:
            raise InputError(f"event kind {quote(raw_type)} maps to no canonical event type")
        model_fields = EVENT_TYPES[etype].model_fields
        data: dict[str, Any] = {
            "type": etype,
            "ts": self._time(mapping.ts, row, zone),
            "event_id": (
                self._cell(mapping.event_id, row)
                if mapping.event_id is not None
                else f"{self._stem}:row{rowno}"
            ),
        }
        for name, spec in mapping.fields.items():
            if name not in model_fields:
                continue  # a column for other event types (one export, many kinds)
            cell = self._cell(spec, row)
            if not cell:
                continue
            data[name] = self._value(name, spec, cell, row)
        if "pump_id" in model_fields and model_fields["pump_id"].is_required():
            if "pump_id" not in data:
                raise InputError(f"{etype} row has no pump_id")
            try:
                data["patient_id"] = self.binder.resolve(
                    data["pump_id"], data["ts"], data.get("patient_id"), "the row names no patient"
                )
            except BindingError as exc:
                raise InputError(exc.message) from exc
        try:
            return make_event(data)
        except ValidationError as exc:
            raise InputError(f"{etype}: {describe_invalid(exc)}") from exc

    def _time(
        self, spec: ColumnSpec, row: dict[str, str | None], zone: ZoneInfo | None
    ) -> datetime:
        cell = self._cell(spec, row)
        if not cell:
            raise InputError(f"no time in column {quote(spec.column)}")
        try:
            if spec.format:
                ts = datetime.strptime(cell, spec.format)  # noqa: DTZ007 - zone checked below
            else:
                ts = datetime.fromisoformat(cell.replace("Z", "+00:00"))
        except ValueError as exc:
            msg = f"time {quote(cell)} does not match {spec.format or 'ISO 8601'}"
            raise InputError(msg) from exc
        if ts.tzinfo is None:
            no_zone = "neither the mapping nor the feed configuration names a time_zone"
            ts = localize(ts, zone, f"time {quote(cell)}", no_zone=no_zone)
        return ts

    def _value(self, name: str, spec: ColumnSpec, cell: str, row: dict[str, str | None]) -> Any:
        if spec.values:
            if cell not in spec.values:
                msg = f"{name}: value {quote(cell)} is not in the mapping's values"
                raise InputError(msg)
            cell = spec.values[cell]
        target = _canonical_unit(name)
        if name in _BOOL_FIELDS:
            low = cell.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise InputError(f"{name}: {quote(cell)} is not a yes/no value")
        if target is None and name not in _INT_FIELDS:
            return cell
        try:
            number = float(cell.replace(" ", ""))
        except ValueError as exc:
            raise InputError(f"{name}: {quote(cell)} is not a number") from exc
        if name in _INT_FIELDS or name == "duration_h":
            if not number.is_integer():
                raise InputError(f"{name}: {quote(cell)} is not a whole number")
            if target is None:
                return int(number)
        unit_text = spec.unit or self._cell(ColumnSpec(column=spec.unit_column), row)
        unit = normalise_unit(unit_text)
        if unit is None:
            raise InputError(
                f"{name}: unit {quote(unit_text or '(empty)')} is not one pumpguard converts"
            )
        try:
            value = convert(number, unit, target or "")
        except UnitError as exc:
            raise InputError(f"{name}: {exc}") from exc
        if name == "duration_h":
            return int(value) if float(value).is_integer() else value
        return value
