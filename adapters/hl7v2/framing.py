"""Framing: a byte stream cut into messages, and what lies between them said.

MLLP bytes, a UTF-8 BOM, LF or CRLF segment ends are normalised here, so vendor
quirks never reach the parser. One record, one fate starts here: every message,
and every note or stray line between messages, leaves as a :class:`RawMessage`
or a :class:`Stray`; nothing is absorbed into a neighbour.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["RawMessage", "Stray", "quote", "split_messages"]

_SEGMENT_END = re.compile(rb"\r\n|\n|\r")
_BOM = b"\xef\xbb\xbf"
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")
_SEGMENT_ID = re.compile(rb"[A-Z][A-Z0-9]{2}")
_QUOTE_LIMIT = 200


def quote(value: str | bytes, limit: int = _QUOTE_LIMIT) -> str:
    """A value for a reject reason: repr-quoted, cut at ``limit`` characters, length said.

    Reasons go to a terminal and a JSONL file; a 100 KB field must not ride along.
    """
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message's segments as bytes, with where it started in the input.

    ``problem`` is set when framing already knows the message is malformed (a
    segment broken across lines, text inside it, no MSH line): such a message is
    rejected whole rather than read in part, because a part may mean something else.
    """

    number: int
    line: int
    segments: list[bytes]
    problem: str | None = None

    @property
    def position(self) -> str:
        # The message's number in the file and its first line; its MSH-10 is its event_id.
        if not self.segments or not self.segments[0].startswith(b"MSH"):
            return f"message {self.number} (no MSH, line {self.line})"
        return f"message {self.number} (line {self.line})"


@dataclass(frozen=True, slots=True)
class Stray:
    """Lines outside any message: a note in a capture, a JSON line, binary junk."""

    line: int
    last: int
    reason: str
    level: Literal["error", "warning"]

    @property
    def position(self) -> str:
        return f"line {self.line}"


def _unframe(data: bytes) -> bytes:
    """MLLP bytes out, line numbers kept: a start byte at a line's start goes, one mid-line
    ends the segment before it; an end byte goes (its CR ends the line it was on)."""
    data = data.replace(b"\x1c", b"").replace(b"\r\x0b", b"\r").replace(b"\n\x0b", b"\n")
    if data.startswith(b"\x0b"):
        data = data[1:]
    return data.replace(b"\x0b", b"\r")


def _is_segment(line: bytes, fs: bytes) -> bool:
    return (len(line) == 3 or line[3:4] == fs) and _SEGMENT_ID.fullmatch(line[:3]) is not None


def _is_json(line: bytes) -> bool:
    return line[:1] in (b"{", b"[")


def _continues(line: bytes, fs: bytes, message: list[bytes]) -> bool:
    """A non-segment line that is the rest of a segment a newline broke.

    It has field separators: two or more, or one right after the MSH (a wrapped
    MSH-10, as a B. Braun capture shows). One ``|`` in a line of prose after a
    message's last segment is a note, and must not cost that message.
    """
    if _is_json(line) or fs not in line:
        return False
    return line.count(fs) >= 2 or len(message) == 1


_MSH_INSIDE = re.compile(rb"MSH[^A-Za-z0-9\r\n]")


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their numbers; a line with junk before its MSH is two pieces.

    ``garbage MSH|^~\\&|...`` starts a message at the MSH: the junk before it is a
    stray of its own, so it can neither hide the message nor damage the one before.
    """
    for lineno, raw in enumerate(_SEGMENT_END.split(data), start=1):
        line = raw.rstrip(b" \t")
        if line[:1] == b"\xef" and line.startswith(_BOM):
            line = line[3:]
        if not line:
            continue
        found = None
        if line.find(b"MSH", 1) > 0 and not _SEGMENT_ID.fullmatch(line[:3]):
            found = _MSH_INSIDE.search(line, 1)
        if found is not None:
            prefix = line[: found.start()].rstrip(b" \t")
            if prefix:
                yield lineno, prefix
            yield lineno, line[found.start() :]
            continue
        yield lineno, line


def _stray(block: list[tuple[int, bytes]]) -> Stray:
    first, last = block[0][0], block[-1][0]
    text = block[0][1]
    if _is_json(text):
        return Stray(
            first,
            last,
            f"a JSON line, not an HL7 segment: {quote(text)}; canonical events belong in a "
            ".jsonl file, HL7 messages start with MSH",
            "error",
        )
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        decoded = ""
    if not decoded or any(not (c.isprintable() or c == "\t") for c in decoded):
        return Stray(first, last, f"bytes that are not HL7 text: {quote(text)}", "error")
    lines = f"{last - first + 1} lines of text (lines {first}-{last})" if last > first else "text"
    return Stray(
        first,
        last,
        f"{lines} outside any HL7 message (a note in a capture?), skipped: {quote(text)}",
        "warning",
    )


def split_messages(data: bytes) -> Iterator[RawMessage | Stray]:
    """Cut a byte stream into messages, and say what lies between them.

    MLLP start/end bytes are dropped (an unclosed last block is a cut-off message),
    so are BOMs; CRLF, LF and CR all end a segment (ADT files are often saved with LF).
    Batch envelopes (FHS/BHS/BTS/FTS) carry no events and are skipped. Nothing is
    absorbed into a neighbour: a text line between messages is a :class:`Stray`;
    segments with no MSH before them (a lost MSH line, or a second PID that
    starts another message) are a message of their own, rejected; a line that
    continues a segment, or text inside a message, makes that message malformed.
    """
    cut_from: int | None = None  # first line of an MLLP block the input never closed
    if b"\x0b" in data or b"\x1c" in data:
        last_open = data.rfind(b"\x0b")
        if last_open > data.rfind(b"\x1c"):
            cut_from = len(_SEGMENT_END.findall(_unframe(data[: last_open + 1]))) + 1
        data = _unframe(data)
    number = 0
    current: list[bytes] | None = None
    start = 0
    problem: str | None = None
    headless = False
    fs = b"|"
    seen: set[bytes] = set()
    junk: list[tuple[int, bytes]] = []  # text lines not yet known to be inside or between

    def strays() -> Iterator[Stray]:
        # Consecutive text lines are one note; every JSON line is a record of its own.
        block: list[tuple[int, bytes]] = []
        for item in junk:
            apart = item[0] != block[-1][0] + 1 if block else False
            if block and (apart or _is_json(item[1]) or _is_json(block[0][1])):
                yield _stray(block)
                block = []
            block.append(item)
        if block:
            yield _stray(block)
        junk.clear()

    def close() -> Iterator[RawMessage | Stray]:
        nonlocal current, problem, headless
        if current is not None:
            if cut_from is not None and start >= cut_from and problem is None:
                problem = (
                    "the input ends inside this message's MLLP block (no end byte): the message "
                    "was cut off in transfer; not read"
                )
            if headless and problem is None:
                kinds = ", ".join(dict.fromkeys(s[:3].decode("ascii", "replace") for s in current))
                problem = (
                    f"{len(current)} segment(s) ({kinds}) with no MSH segment before them: the "
                    "message's MSH line is missing (or a second PID started another message); "
                    "not read"
                )
            yield RawMessage(number, start, current, problem)
        current, problem, headless = None, None, False
        yield from strays()

    for lineno, line in _lines(data):
        head = line[:3]
        if head == b"MSH":
            yield from close()
            number += 1
            current, start, seen = [line], lineno, {b"MSH"}
            fs = line[3:4] or b"|"
        elif head in _ENVELOPE and _is_segment(line, fs):
            yield from close()
        elif _is_segment(line, fs):
            if current is not None and not headless and head in (b"PID", b"EVN") and head in seen:
                yield from close()  # a second patient: the next message lost its MSH
            if current is None:
                yield from strays()
                number += 1
                current, start, headless, seen = [], lineno, True, set()
            elif junk:
                if problem is None:
                    problem = (
                        f"line {junk[0][0]} inside the message is not an HL7 segment: "
                        f"{quote(junk[0][1])}; the message is malformed, not read"
                    )
                junk.clear()
            current.append(line)
            seen.add(head)
        elif current is not None and not headless and not junk and _continues(line, fs, current):
            if problem is None:
                problem = (
                    f"line {lineno} continues the segment before it (a line break inside a "
                    f"field, e.g. a wrapped MSH-10): {quote(line)}; the message is malformed, "
                    "not read"
                )
            current.append(line)
        else:
            if headless:
                yield from close()
            junk.append((lineno, line))
    yield from close()
