"""Canonical JSONL in, findings JSONL out (hash-chained, with a seal beside the file).

Every findings line ends with two fields spec/findings.md does not list:
``seq`` (the line's number, from 1) and ``prev_sha256`` (the sha256 of the
previous line's bytes, without its newline; 64 zeros on the first line). A
reader that ignores unknown fields still reads each line as a finding, and
:func:`pumpguard.verify.verify_findings` can say which line was changed,
deleted, inserted or moved. The seal (``FINDINGS.jsonl.seal``) records the
count, the last line's hash and the rule pack, so a cut-off end shows too.
"""

from __future__ import annotations

import hashlib
import io
import json
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
from pumpguard.engine.events import Event, validate_event_json
from pumpguard.engine.findings import Finding, RulePackRef
from pydantic import ValidationError

__all__ = [
    "GENESIS",
    "SEAL_FORMAT",
    "SEAL_SUFFIX",
    "ChainState",
    "JsonlFindingSink",
    "JsonlSource",
    "chain_line",
    "line_sha256",
    "seal_record",
    "unchained",
]

GENESIS = "0" * 64
"""What the first line records as the hash of its (absent) predecessor."""

SEAL_SUFFIX = ".seal"
SEAL_FORMAT = "pumpguard-findings-seal/1"
_CHAIN_TAIL = ',"seq":'


def line_sha256(line: str) -> str:
    """The hash a line is chained by: sha256 of its UTF-8 bytes, newline excluded."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def chain_line(body: str, seq: int, prev_sha256: str) -> str:
    """A finding's JSON object with the chain fields appended as its last keys."""
    if not body.endswith("}"):
        raise ValueError("a finding line is a JSON object")
    return f'{body[:-1]}{_CHAIN_TAIL}{seq},"prev_sha256":"{prev_sha256}"}}'


def unchained(line: str) -> str:
    """A findings line as it was before the chain: the same bytes a digest compares."""
    at = line.rfind(_CHAIN_TAIL)
    if at < 0 or '"prev_sha256":' not in line[at:]:
        return line
    return line[:at] + "}"


class ChainState:
    """The running chain: how many lines so far and the hash of the last."""

    def __init__(self) -> None:
        self.count = 0
        self.last_sha256 = GENESIS

    def next_line(self, finding: Finding) -> str:
        """The chained line for ``finding``; advances the chain."""
        self.count += 1
        line = chain_line(finding.to_json(), self.count, self.last_sha256)
        self.last_sha256 = line_sha256(line)
        return line


def seal_record(chain: ChainState, pack: RulePackRef | None) -> str:
    """The seal's text: count, last hash and the rule pack in force (one JSON object)."""
    data = {
        "format": SEAL_FORMAT,
        "findings": chain.count,
        "last_sha256": chain.last_sha256,
        "rule_pack": pack.model_dump(mode="json") if pack is not None else None,
    }
    return json.dumps(data, sort_keys=True) + "\n"


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
        """The records one line gives: an event (after its warning, if any), or a reject.

        The bytes are validated as they are (the JSON parser checks UTF-8 itself);
        only a line it refuses is decoded, to say why in the words the reject uses.
        """
        position = self.position
        try:
            event: Event = validate_event_json(raw)
        except ValidationError:
            return self._refused(raw, lineno, position)
        return self._accepted(event, position)

    def _accepted(self, event: Event, position: str) -> list[Record]:
        warning = unknown_fields_warning(event, self.label, position)
        return [event] if warning is None else [warning, event]

    def _refused(self, raw: bytes, lineno: int, position: str) -> list[Record]:
        """A line the parser refused as bytes: not UTF-8, a byte-order mark, or invalid."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [Reject(self.label, position, f"not UTF-8: {exc.reason} at byte {exc.start}")]
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        try:
            event: Event = validate_event_json(text)
        except ValidationError as exc:
            return [Reject(self.label, position, describe_invalid(exc))]
        return self._accepted(event, position)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class JsonlFindingSink(FindingSink):
    """Findings as JSONL, one chained line each, flushed as they are raised.

    ``chain`` holds the count and last hash after the run, for the seal.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.chain = ChainState()

    def write(self, finding: Finding) -> None:
        self._stream.write(self.chain.next_line(finding) + "\n")

    def close(self) -> None:
        self._stream.flush()
