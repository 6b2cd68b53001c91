"""Canonical JSONL in, findings JSONL out."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pumpguard.adapters.base import (
    EventSource,
    FindingSink,
    Record,
    Reject,
    Tally,
    unknown_fields_warning,
)
from pumpguard.adapters.common import describe_invalid
from pumpguard.engine.events import Event, event_adapter
from pumpguard.engine.findings import Finding
from pydantic import ValidationError

__all__ = ["JsonlFindingSink", "JsonlSource"]


class JsonlSource(EventSource):
    """One canonical event per line; each bad line becomes a reject with its number.

    A record is one non-blank line (a blank line holds nothing to lose).
    """

    name = "jsonl"

    def __init__(
        self, path: str | Path | None = None, *, data: bytes | None = None, label: str | None = None
    ) -> None:
        if path is None and data is None:
            raise ValueError("JsonlSource needs a path or data")
        self.path = Path(path) if path is not None else None
        self._data = data
        self.label = label or (str(path) if path is not None else "jsonl")
        self._fh: IO[bytes] | None = None
        self.position = ""
        self.tally = Tally()

    def _open(self) -> IO[bytes]:
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self.path is not None
        return self.path.open("rb")

    def __iter__(self) -> Iterator[Record]:
        self.tally = Tally()
        self._fh = self._open()
        for lineno, raw in enumerate(self._fh, start=1):
            if not raw.strip():
                continue
            self.position = f"line {lineno}"
            records = self._line(raw, lineno)
            self.tally.note("event" if isinstance(records[-1], Event) else "reject")
            yield from records
        self.close()

    def _line(self, raw: bytes, lineno: int) -> list[Record]:
        """The records one line gives: an event (after its warning, if any), or a reject."""
        position = self.position
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [Reject(self.label, position, f"not UTF-8: {exc.reason} at byte {exc.start}")]
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        try:
            event: Event = event_adapter.validate_json(text)
        except ValidationError as exc:
            return [Reject(self.label, position, describe_invalid(exc))]
        warning = unknown_fields_warning(event, self.label, position)
        return [event] if warning is None else [warning, event]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class JsonlFindingSink(FindingSink):
    """Findings as JSONL, one line each, flushed as they are raised."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, finding: Finding) -> None:
        self._stream.write(finding.to_json() + "\n")

    def close(self) -> None:
        self._stream.flush()
