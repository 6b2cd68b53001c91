"""One way to write canonical events, shared by every stream pumpguard makes itself.

The test streams, the requirement scenarios, the demo course and the drill
generator all write canonical events. Before this module each numbered them,
stamped their times and filled in the pump its own way; now they share these
conventions, and every event they write is validated against the models of
``engine.events`` as it is written, so a builder cannot produce a stream the
engine would reject:

- ``event_id`` is ``<prefix>-<n>``, ``n`` counting from 1 per builder and
  zero-padded (five digits unless told), the prefix the patient's id by default;
- ``ts`` is RFC 3339 in UTC, whole seconds, with a ``Z`` (``stream_time``);
- a ``pump.*`` event carries the builder's ``pump_id`` unless the fields name one;
- a field given as ``None`` is left out: an unknown value is never sent.

The engine owns the event language, so the builder lives beside it; it reads
no clock (every time is given) and imports nothing outside the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from .errors import SchemaError
from .events import Event, event_adapter
from .findings import rfc3339
from .gate import describe_validation_error

__all__ = ["EventBuilder", "check", "stream_time", "to_line"]


def stream_time(at: datetime) -> str:
    """``at`` as streams write it: :func:`~.findings.rfc3339` to the whole second (truncated)."""
    return rfc3339(at.replace(microsecond=0))


def to_line(record: dict[str, Any]) -> str:
    """One canonical record as a JSONL line: compact, keys in the order built."""
    return json.dumps(record, separators=(",", ":"))


@dataclass
class EventBuilder:
    """Numbers, stamps and validates one patient's canonical events.

    ``pump_id`` defaults to ``PUMP-<patient_id>`` (``None``: pump events must
    name theirs) and may change while a stream is written (a bag hung on
    another pump); ``issued`` counts the ids handed out so far.
    """

    patient_id: str
    pump_id: str | None = ""
    id_prefix: str = ""
    id_width: int = 5
    issued: int = 0

    def __post_init__(self) -> None:
        if self.pump_id == "":
            self.pump_id = f"PUMP-{self.patient_id}"
        self.id_prefix = self.id_prefix or self.patient_id

    def next_id(self) -> str:
        self.issued += 1
        return f"{self.id_prefix}-{self.issued:0{self.id_width}d}"

    def draft(self, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
        """The record before validation; ``record``, ``line`` and ``event`` check it."""
        rec: dict[str, Any] = {
            "event_id": self.next_id(),
            "type": type_,
            "ts": stream_time(at),
            "patient_id": self.patient_id,
        }
        if type_.startswith("pump.") and "pump_id" not in fields and self.pump_id:
            rec["pump_id"] = self.pump_id
        rec.update((k, v) for k, v in fields.items() if v is not None)
        return rec

    def record(self, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
        """A validated canonical record (JSON-shaped dict), keys in the order written."""
        rec = self.draft(type_, at, **fields)
        check(rec)
        return rec

    def line(self, type_: str, at: datetime, **fields: Any) -> str:
        """A validated canonical record as one compact JSONL line."""
        text = to_line(self.draft(type_, at, **fields))
        _validate(text)
        return text

    def event(self, type_: str, at: datetime, **fields: Any) -> Event:
        """The validated event model itself (what the engine is given)."""
        return _validate(json.dumps(self.draft(type_, at, **fields)))


def check(record: dict[str, Any]) -> Event:
    """Validate a record as a line of a file would be read; SchemaError says why."""
    return _validate(json.dumps(record))


def _validate(text: str) -> Event:
    try:
        event: Event = event_adapter.validate_json(text)
    except ValidationError as exc:
        raise SchemaError(
            f"built an invalid event: {describe_validation_error(exc)}: {text}"
        ) from exc
    return event
