"""Vendor CSV exports in, through a column mapping written in YAML (no code per vendor).

Audits start from whatever the pump server exports. A mapping names which
column holds the time, the event kind and each canonical field, and for every
number the unit it is in: the unit is always stated (a fixed unit, or a column
that carries it) and converted explicitly into the canonical one, because a
"rate" column in mL/h and one in mcg/h look the same in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pumpguard.adapters.base import EventSource, Record, Reject
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.units import UnitError, convert, normalise_unit
from pumpguard.engine.errors import BindingError, InputError, ParseError
from pumpguard.engine.events import EVENT_TYPES
from pumpguard.engine.gate import describe_validation_error
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
    time_zone: str | None = None
    ts: ColumnSpec
    type: ColumnSpec
    event_id: ColumnSpec | None = None
    fields: dict[str, ColumnSpec] = Field(default_factory=dict)

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
        msg = f"no CSV mapping matches the header {header} (mappings: {names})"
        raise ParseError(msg)
    msg = f"several CSV mappings match the header: {', '.join(m.name for m in hits)}"
    raise ParseError(msg)


class CsvSource(EventSource):
    """Rows of a CSV export as canonical events; each bad row is a reject with its number."""

    name = "csv"

    def __init__(
        self,
        path: str | Path,
        mapping: CsvMapping | None = None,
        *,
        config: AdapterConfig | None = None,
        label: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        self.config = config or AdapterConfig()
        self.mapping = mapping
        self.binder = Binder(self.config)

    def __iter__(self) -> Iterator[Record]:
        text = self.path.read_bytes().decode("utf-8-sig")
        mapping = self.mapping
        if mapping is None:
            first = next(csv.reader(io.StringIO(text)), [])
            mappings = [CsvMapping.from_yaml(p) for p in self.config.csv_mappings]
            mapping = select_mapping(first, mappings)
        zone_name = mapping.time_zone or self.config.time_zone
        zone = ZoneInfo(zone_name) if zone_name else None
        reader = csv.DictReader(io.StringIO(text), delimiter=mapping.delimiter)
        for rowno, row in enumerate(reader, start=2):  # row 1 is the header
            position = f"row {rowno}"
            try:
                yield self._row(mapping, row, position, zone)
            except InputError as exc:
                yield Reject(self.label, position, exc.message)

    def _cell(self, spec: ColumnSpec, row: dict[str, str | None]) -> str:
        if spec.value is not None:
            return spec.value
        return (row.get(spec.column or "") or "").strip()

    def _row(
        self, mapping: CsvMapping, row: dict[str, str | None], position: str, zone: ZoneInfo | None
    ) -> Record:
        raw_type = self._cell(mapping.type, row)
        etype = mapping.type.values.get(raw_type, raw_type if not mapping.type.values else "")
        if etype not in EVENT_TYPES:
            raise InputError(f"event kind {raw_type!r} maps to no canonical event type")
        model_fields = EVENT_TYPES[etype].model_fields
        data: dict[str, Any] = {
            "type": etype,
            "ts": self._time(mapping.ts, row, zone),
            "event_id": (
                self._cell(mapping.event_id, row)
                if mapping.event_id is not None
                else f"{self.path.stem}:{position.replace(' ', '')}"
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
            raise InputError(f"{etype}: {describe_validation_error(exc)}") from exc

    def _time(
        self, spec: ColumnSpec, row: dict[str, str | None], zone: ZoneInfo | None
    ) -> datetime:
        cell = self._cell(spec, row)
        if not cell:
            raise InputError(f"no time in column {spec.column!r}")
        try:
            if spec.format:
                ts = datetime.strptime(cell, spec.format)  # noqa: DTZ007 - zone checked below
            else:
                ts = datetime.fromisoformat(cell.replace("Z", "+00:00"))
        except ValueError as exc:
            msg = f"time {cell!r} does not match {spec.format or 'ISO 8601'}"
            raise InputError(msg) from exc
        if ts.tzinfo is None:
            if zone is None:
                msg = (
                    f"time {cell!r} has no UTC offset and neither the mapping nor the feed "
                    "configuration names a time_zone; never guessed"
                )
                raise InputError(msg)
            local = ts.replace(tzinfo=zone)
            if local.utcoffset() != ts.replace(tzinfo=zone, fold=1).utcoffset():
                raise InputError(f"time {cell!r} is ambiguous in {zone.key}; never guessed")
            ts = ts.replace(tzinfo=timezone(local.utcoffset() or timedelta(0)))
        return ts

    def _value(self, name: str, spec: ColumnSpec, cell: str, row: dict[str, str | None]) -> Any:
        if spec.values:
            if cell not in spec.values:
                msg = f"{name}: value {cell!r} is not in the mapping's values"
                raise InputError(msg)
            cell = spec.values[cell]
        target = _canonical_unit(name)
        if name in _BOOL_FIELDS:
            low = cell.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise InputError(f"{name}: {cell!r} is not a yes/no value")
        if target is None and name not in _INT_FIELDS:
            return cell
        try:
            number = float(cell.replace(" ", ""))
        except ValueError as exc:
            raise InputError(f"{name}: {cell!r} is not a number") from exc
        if name in _INT_FIELDS or name == "duration_h":
            if not number.is_integer():
                raise InputError(f"{name}: {cell!r} is not a whole number")
            if target is None:
                return int(number)
        unit_text = spec.unit or self._cell(ColumnSpec(column=spec.unit_column), row)
        unit = normalise_unit(unit_text)
        if unit is None:
            raise InputError(
                f"{name}: unit {unit_text or '(empty)'!r} is not one pumpguard converts"
            )
        try:
            value = convert(number, unit, target or "")
        except UnitError as exc:
            raise InputError(f"{name}: {exc}") from exc
        if name == "duration_h":
            return int(value) if float(value).is_integer() else value
        return value
