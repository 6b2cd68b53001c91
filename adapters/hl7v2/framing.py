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
    data, cut_from = _without_mllp(data)
    splitter = _Splitter(cut_from)
    for lineno, line in _lines(data):
        yield from splitter.feed(lineno, line)
    yield from splitter.close()


def _without_mllp(data: bytes) -> tuple[bytes, int | None]:
    """The bytes unframed, and the first line of an MLLP block the input never closed."""
    if b"\x0b" not in data and b"\x1c" not in data:
        return data, None
    cut_from: int | None = None
    last_open = data.rfind(b"\x0b")
    if last_open > data.rfind(b"\x1c"):
        cut_from = len(_SEGMENT_END.findall(_unframe(data[: last_open + 1]))) + 1
    return _unframe(data), cut_from


class _Splitter:
    """One pass over the lines: the message being built, and text not yet known to be
    inside a message or between two (it is placed when the next line tells)."""

    __slots__ = (
        "current",
        "cut_from",
        "fs",
        "headless",
        "junk",
        "number",
        "problem",
        "seen",
        "start",
    )

    def __init__(self, cut_from: int | None) -> None:
        self.cut_from = cut_from
        self.number = 0
        self.current: list[bytes] | None = None
        self.start = 0
        self.problem: str | None = None
        self.headless = False
        self.fs = b"|"
        self.seen: set[bytes] = set()
        self.junk: list[tuple[int, bytes]] = []

    def feed(self, lineno: int, line: bytes) -> Iterator[RawMessage | Stray]:
        """One line: it starts a message, joins the current one, or waits as text."""
        head = line[:3]
        if head == b"MSH":
            yield from self.close()
            self.number += 1
            self.current, self.start, self.seen = [line], lineno, {b"MSH"}
            self.fs = line[3:4] or b"|"
        elif head in _ENVELOPE and _is_segment(line, self.fs):
            yield from self.close()
        elif _is_segment(line, self.fs):
            yield from self._segment(lineno, line)
        elif (current := self._wrapped_into(line)) is not None:
            self._malformed(
                f"line {lineno} continues the segment before it (a line break inside a "
                f"field, e.g. a wrapped MSH-10): {quote(line)}; the message is malformed, "
                "not read"
            )
            current.append(line)
        else:
            if self.headless:
                yield from self.close()
            self.junk.append((lineno, line))

    def _wrapped_into(self, line: bytes) -> list[bytes] | None:
        """The current message, if this non-segment line is the rest of its last segment."""
        current = self.current
        if current is None or self.headless or self.junk:
            return None
        return current if _continues(line, self.fs, current) else None

    def _segment(self, lineno: int, line: bytes) -> Iterator[RawMessage | Stray]:
        """A segment line other than MSH: part of the current message, or a headless one."""
        head = line[:3]
        if (
            self.current is not None
            and not self.headless
            and head in (b"PID", b"EVN")
            and head in self.seen
        ):
            yield from self.close()  # a second patient: the next message lost its MSH
        if self.current is None:
            yield from self.strays()
            self.number += 1
            self.current, self.start, self.headless, self.seen = [], lineno, True, set()
        elif self.junk:
            self._malformed(
                f"line {self.junk[0][0]} inside the message is not an HL7 segment: "
                f"{quote(self.junk[0][1])}; the message is malformed, not read"
            )
            self.junk.clear()
        self.current.append(line)
        self.seen.add(head)

    def _malformed(self, problem: str) -> None:
        # The first problem found names the message's fate; later ones add nothing.
        if self.problem is None:
            self.problem = problem

    def close(self) -> Iterator[RawMessage | Stray]:
        """The current message (if any) is complete; then the text after it."""
        if self.current is not None:
            yield self._message(self.current)
        self.current, self.problem, self.headless = None, None, False
        yield from self.strays()

    def _message(self, segments: list[bytes]) -> RawMessage:
        if self.cut_from is not None and self.start >= self.cut_from:
            self._malformed(
                "the input ends inside this message's MLLP block (no end byte): the message "
                "was cut off in transfer; not read"
            )
        if self.headless:
            kinds = ", ".join(dict.fromkeys(s[:3].decode("ascii", "replace") for s in segments))
            self._malformed(
                f"{len(segments)} segment(s) ({kinds}) with no MSH segment before them: the "
                "message's MSH line is missing (or a second PID started another message); "
                "not read"
            )
        return RawMessage(self.number, self.start, segments, self.problem)

    def strays(self) -> Iterator[Stray]:
        """The waiting text as strays: consecutive lines are one note; every JSON line is a
        record of its own."""
        block: list[tuple[int, bytes]] = []
        for item in self.junk:
            apart = item[0] != block[-1][0] + 1 if block else False
            if block and (apart or _is_json(item[1]) or _is_json(block[0][1])):
                yield _stray(block)
                block = []
            block.append(item)
        if block:
            yield _stray(block)
        self.junk.clear()
