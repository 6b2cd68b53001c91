"""Canonical JSONL in, findings JSONL out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pumpguard.adapters.base import EventSource, FindingSink, Record, Reject, unknown_fields_warning
from pumpguard.engine.events import event_adapter
from pumpguard.engine.findings import Finding
from pumpguard.engine.gate import describe_validation_error
from pydantic import ValidationError

__all__ = ["JsonlFindingSink", "JsonlSource"]


class JsonlSource(EventSource):
    """One canonical event per line; each bad line becomes a reject with its number."""

    name = "jsonl"

    def __init__(self, path: str | Path, *, label: str | None = None) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        self._fh: IO[bytes] | None = None
        self.position = ""

    def __iter__(self) -> Iterator[Record]:
        self._fh = self.path.open("rb")
        for lineno, raw in enumerate(self._fh, start=1):
            if not raw.strip():
                continue
            position = self.position = f"line {lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Reject(self.label, position, f"not UTF-8: {exc.reason} at byte {exc.start}")
                continue
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            try:
                event = event_adapter.validate_json(text)
            except ValidationError as exc:
                yield Reject(self.label, position, describe_validation_error(exc, text))
                continue
            warning = unknown_fields_warning(event, self.label, position)
            if warning is not None:
                yield warning
            yield event
        self.close()

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
