"""HL7 v2 in: IHE PCD-10 (ORU^R42), PCD-01 (ORU^R01), PCD-04 (ORU^R40) and ADT.

What the pump side sends is a stream of OBX rows keyed by MDC terms and a
device hierarchy; what the engine needs is "the infusion stopped at 10:02 on
patient p1". This module closes that gap in three steps:

1. **Framing** (:func:`split_messages`): MLLP bytes, a UTF-8 BOM, LF or CRLF
   segment ends are normalised first, so vendor quirks never reach the parser.
2. **Parsing**: a split-on-demand reader (fields split once, components only
   when read). ``hl7.parse`` from python-hl7 gives the same fields but builds an
   object per element and runs at ~700 PCD-10 messages/s on our VM, below the
   5,000/s target; it stays selectable (``hl7_parser: python-hl7``) and a test
   checks both give the same events.
3. **Mapping**: MDC terms (:mod:`.mdc`), times (OBX-14, else OBR-7, offset
   kept), explicit units (:mod:`.units`), patient binding (:class:`.Binder`),
   and per-channel state that turns IPEC's STOP/START pairs into bolus, pause,
   rate change and bag change.

One record, one fate: every message, and every note or stray line between
messages, ends as events, a warning or a reject naming the file, the message
number and its line (``message 12 (line 40)``; the message's MSH-10 is its
event_id), and :attr:`Hl7Source.tally` counts each once. Nothing is absorbed
into a neighbour (segments with no MSH, a wrapped segment, text inside a
message are rejected as what they are), and nothing enumerated is guessed: a
delivery status, active source or alarm phase the reader does not know is a
reject, an unknown stop reason or alarm code is said in a warning. Messages
that make no event by design (an unchanged PCD-01 status, a cleared program,
a source-switch STOP waiting for its START, a later phase of an alarm already
reported, an ACK) say so in a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pumpguard.adapters.base import EventSource, Record, Reject, Tally
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.mdc import Term, lookup
from pumpguard.adapters.timestamps import in_utc_range, localize
from pumpguard.adapters.units import UnitError, convert, normalise_unit
from pumpguard.engine.errors import BindingError, InputError, ParseError
from pumpguard.engine.gate import describe_validation_error
from pydantic import ValidationError

__all__ = [
    "Hl7Message",
    "Hl7Reader",
    "Hl7Source",
    "channel_letter",
    "parse_dtm",
    "split_messages",
]

_SEGMENT_END = re.compile(rb"\r\n|\n|\r")
_BOM = b"\xef\xbb\xbf"
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")
# ASCII digits only: Python's \d also takes other scripts' digits, which HL7 never sends.
_NM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$", re.ASCII)
_DTM = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?(?:([+-])(\d{2})(\d{2}))?$",
    re.ASCII,
)


# --------------------------------------------------------------------------- framing

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


# --------------------------------------------------------------------------- parsing


def _check_encoding(encoding: str, fs: str) -> None:
    """MSH-2 must declare 2 to 5 distinct separators, none a letter, digit or the field one."""
    if (
        not 2 <= len(encoding) <= 5
        or any(c.isalnum() or c == fs or c.isspace() for c in encoding)
        or len(set(encoding)) != len(encoding)
    ):
        msg = f"MSH-2 encoding characters {quote(encoding, 40)} are not valid"
        raise ParseError(msg)


class Hl7Message:
    """Fields of every segment, split once; components split only when read.

    ``seg[n]`` is field *n* in HL7 numbering for every segment, MSH included
    (``msh[1]`` is the field separator, ``msh[2]`` the encoding characters).
    """

    __slots__ = ("cs", "es", "rs", "segments", "ss")

    def __init__(self, segments: list[list[str]], encoding: str) -> None:
        self.segments = segments
        self.cs = encoding[0]
        self.rs = encoding[1] if len(encoding) > 1 else "~"
        self.es = encoding[2] if len(encoding) > 2 else "\\"
        self.ss = encoding[3] if len(encoding) > 3 else "&"

    @classmethod
    def parse(cls, text_segments: list[str]) -> Hl7Message:
        """Split segments into fields with the separators MSH declares."""
        msh = text_segments[0]
        if len(msh) < 8:
            raise ParseError("truncated MSH segment: no encoding characters")
        fs = msh[3]
        parts = msh.split(fs)
        encoding = parts[1]
        _check_encoding(encoding, fs)
        segments = [["MSH", fs, *parts[1:]]]
        segments.extend(s.split(fs) for s in text_segments[1:])
        return cls(segments, encoding)

    @classmethod
    def parse_with_python_hl7(cls, text_segments: list[str]) -> Hl7Message:
        """The same fields, read through python-hl7's full parser (slower, stricter)."""
        import hl7  # local: only this path needs it

        try:
            parsed = hl7.parse("\r".join(text_segments))
            segments = [[str(f) for f in seg] for seg in parsed]
        except Exception as exc:  # python-hl7 raises several kinds; all mean "unreadable"
            msg = f"python-hl7 could not parse the message: {quote(str(exc))}"
            raise ParseError(msg) from exc
        msh = segments[0] if segments else []
        if len(msh) < 3:
            raise ParseError("truncated MSH segment: no encoding characters")
        _check_encoding(msh[2], msh[1])
        return cls(segments, msh[2])

    def first(self, name: str) -> list[str] | None:
        """The first segment with this id, or None."""
        for seg in self.segments:
            if seg[0] == name:
                return seg
        return None

    def all(self, name: str) -> list[list[str]]:
        return [seg for seg in self.segments if seg[0] == name]

    def unescape(self, value: str) -> str:
        """Decode the HL7 escapes for separators (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\)."""
        es = self.es
        if es not in value:
            return value
        table = {"F": "|", "S": self.cs, "T": self.ss, "R": self.rs, "E": es}
        out: list[str] = []
        i = 0
        while i < len(value):
            ch = value[i]
            if ch == es:
                end = value.find(es, i + 1)
                if end != -1 and value[i + 1 : end] in table:
                    out.append(table[value[i + 1 : end]])
                    i = end + 1
                    continue
            out.append(ch)
            i += 1
        return "".join(out)

    def comp(self, seg: list[str] | None, n: int, c: int = 1, rep: int = 0) -> str:
        """Component ``c`` of repetition ``rep`` of field ``n`` (first subcomponent), unescaped."""
        if seg is None or n >= len(seg):
            return ""
        value = seg[n]
        if not value:
            return ""
        if self.rs in value and not (seg[0] == "MSH" and n == 2):
            reps = value.split(self.rs)
            value = reps[rep] if rep < len(reps) else ""
        elif rep:
            return ""
        parts = value.split(self.cs)
        if c > len(parts):
            return ""
        value = parts[c - 1]
        if self.ss in value:
            value = value.split(self.ss)[0]
        return self.unescape(value).strip()

    def reps(self, seg: list[str] | None, n: int) -> int:
        if seg is None or n >= len(seg) or not seg[n]:
            return 0
        return seg[n].count(self.rs) + 1


def channel_letter(vmd: int) -> str:
    """VMD 1 is channel "A", 2 is "B"...: one VMD per delivery channel (TF-2 B.8).

    Raises InputError past Z: an OBX-4 of ``1.2000000.0.0`` is a damaged row, not a pump
    with two million channels.
    """
    if not 1 <= vmd <= _MAX_CHANNELS:
        shown = str(vmd) if vmd < 10**9 else "of 10 or more digits"
        msg = f"OBX-4 names VMD {shown}; pumpguard reads channels 1 to {_MAX_CHANNELS} (A-Z)"
        raise InputError(msg)
    return chr(ord("A") + vmd - 1)


def parse_dtm(value: str, zone: ZoneInfo | None, what: str = "timestamp") -> datetime:
    """An HL7 DTM as an aware datetime, offset kept; no offset needs a configured zone.

    The time in UTC must fall in years 1 to 9999: what lies outside cannot be
    ordered or compared downstream, so it is rejected here, at the edge.
    """
    m = _DTM.match(value.strip())
    if m is None:
        if re.match(r"^\d{4,11}([+-]\d{4})?$", value.strip(), re.ASCII):
            msg = f"{what} {quote(value, 80)} is less precise than minutes; event times need HHMM"
        else:
            msg = f"{what} {quote(value, 80)} is not an HL7 DTM (YYYYMMDDHHMM[SS[.S]][+/-ZZZZ])"
        raise ParseError(msg)
    year, month, day, hour, minute, sec, frac, sign, oh, om = m.groups()
    try:
        naive = datetime(  # noqa: DTZ001 - the zone is attached just below, never guessed
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(sec or 0),
            int((frac or "0").ljust(6, "0")),
        )
    except ValueError as exc:
        msg = f"{what} {value!r} is not a real date or time: {exc}"
        raise ParseError(msg) from exc
    shown = f"{what} {value!r}"
    if not sign:
        return localize(naive, zone, shown)
    if int(oh) > 23 or int(om) > 59:
        msg = f"{shown} has UTC offset {sign}{oh}{om}, which is not a real offset"
        raise ParseError(msg)
    offset = timedelta(hours=int(oh), minutes=int(om))
    return in_utc_range(naive.replace(tzinfo=timezone(-offset if sign == "-" else offset)), shown)


# --------------------------------------------------------------------------- OBX rows


@dataclass(slots=True)
class Obx:
    """The parts of one OBX row the mapping reads."""

    term: Term | None
    refid: str
    code: str
    position: str
    vtype: str
    value: str
    unit: str | None
    unit_raw: str
    ts: str
    seg: list[str]
    setid: str


def _read_obx(msg: Hl7Message, seg: list[str]) -> Obx:
    code = msg.comp(seg, 3, 1)
    refid = msg.comp(seg, 3, 2)
    unit_raw = seg[6] if len(seg) > 6 else ""
    unit = None
    if unit_raw:
        unit = normalise_unit(
            msg.comp(seg, 6, 4), msg.comp(seg, 6, 2), msg.comp(seg, 6, 1), msg.comp(seg, 6, 5)
        )
    return Obx(
        term=lookup(code, refid),
        refid=refid,
        code=code,
        position=seg[4] if len(seg) > 4 else "",
        vtype=seg[2] if len(seg) > 2 else "",
        value=seg[5] if len(seg) > 5 else "",
        unit=unit,
        unit_raw=unit_raw,
        ts=seg[14] if len(seg) > 14 else "",
        seg=seg,
        setid=seg[1] if len(seg) > 1 else "",
    )


def _obx_name(o: Obx) -> str:
    return _short(o.refid or o.code or "?")


def _short(text: str, limit: int = 60) -> str:
    """An identifier for a reason, cut so a damaged field cannot flood it."""
    return text if len(text) <= limit else text[:limit] + "..."


def _row_name(o: Obx) -> str:
    return f"OBX {_short(o.setid, 12)} ({_obx_name(o)})"


@dataclass(slots=True)
class Program:
    """What a PCD-10/PCD-01 message says about one channel, in canonical units."""

    drug: str | None = None
    rate_ml_h: float | None = None
    dose_mcg_day: float | None = None
    vtbi_ml: float | None = None
    vtbi_remain_ml: float | None = None
    concentration_mcg_ml: float | None = None
    volume_infused_ml: float | None = None
    bag_id: str | None = None
    weight_kg: float | None = None
    delivery_status: str = ""
    not_delivering_reason: str = ""
    active_source: str = ""
    alarm: Term | None = None
    unit_problems: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Channel:
    """What the reader remembers about one pump channel between messages."""

    status: str = "unknown"  # running | stopped | ended | unknown
    drug: str | None = None
    rate: float | None = None
    bag: str | None = None
    bolus_active: bool = False
    pending_stop: tuple[str, list[Record]] | None = None  # (position of the STOP, its records)
    delivering01: bool | None = None


class Hl7Reader:
    """Stateful HL7 v2 → canonical mapping for one feed (a file, or a live connection).

    State is per feed on purpose: a STOP and its START may be minutes apart, and
    the pair decides whether the stop was a pause, a bolus or a rate change.
    """

    def __init__(
        self, config: AdapterConfig | None = None, label: str = "hl7", tally: Tally | None = None
    ) -> None:
        self.config = config or AdapterConfig()
        self.label = label
        self.tally = tally if tally is not None else Tally()
        self.zone = self.config.zone
        self.binder = Binder(self.config)
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._alarms: dict[str, set[str]] = {}
        self._adt_last: dict[str, tuple[str, str | None]] = {}
        self._released: list[tuple[str, Record]] = []
        self._parse: Callable[[list[str]], Hl7Message] = (
            Hl7Message.parse_with_python_hl7
            if self.config.hl7_parser == "python-hl7"
            else Hl7Message.parse
        )

    # ------------------------------------------------------------------ entry points

    def read(self, data: bytes) -> Iterator[Record]:
        """Every record from a byte stream, then what was held back (pending stops)."""
        for _, record in self.read_located(data):
            yield record

    def read_located(self, data: bytes) -> Iterator[tuple[str, Record]]:
        """Every record with the position of the message it belongs to.

        Each message (and each stray line or note between messages) is counted
        once in :attr:`tally`; a stop held back by one message and released by
        a later one keeps the position of the message that sent it.
        """
        empty = True
        for item in split_messages(data):
            empty = False
            if isinstance(item, Stray):
                self.tally.note("reject" if item.level == "error" else "warning")
                yield item.position, Reject(self.label, item.position, item.reason, item.level)
                continue
            position = item.position
            if item.problem is not None:
                records: list[Record] = [Reject(self.label, position, item.problem)]
            else:
                records = self.read_message(item.segments, position)
            for where, held in self._released:
                yield where, _bounded(held)
            self._released.clear()
            self.tally.note(_fate(records))
            for record in records:
                yield position, _bounded(record)
        if empty:
            self.tally.note("warning")
            reason = "no HL7 message: the input is empty (or holds only blank lines)"
            yield "line 1", Reject(self.label, "line 1", reason, "warning")
        yield from self.finish_located()

    def read_message(self, segments: list[bytes], position: str) -> list[Record]:
        """Records from one message; any failure is a reject for this message only.

        Stops an earlier message held back and this one releases are not in the
        list: they wait in ``_released`` with their own position.
        """
        try:
            msg = self._parse(self._decode(segments))
            records = self._dispatch(msg, position)
        except InputError as exc:
            return [Reject(self.label, position, exc.message)]
        if not records:
            # Every branch should say why it made no event; this keeps the promise if one does not.
            records = [Reject(self.label, position, "message read; it gives no event", "warning")]
        return records

    def finish(self) -> list[Record]:
        """Stops still waiting for their START (source switch that never resumed)."""
        return [record for _, record in self.finish_located()]

    def finish_located(self) -> list[tuple[str, Record]]:
        """:meth:`finish`, each stop with the position of the message that sent it."""
        out: list[tuple[str, Record]] = list(self._released)
        self._released.clear()
        for state in self._channels.values():
            if state.pending_stop is not None:
                position, records = state.pending_stop
                out.extend((position, r) for r in records)
                state.pending_stop = None
                state.status = "stopped"
        return out

    def _release(self, state: _Channel) -> None:
        """A held-back stop turned out to be a real stop: send it, under its own message."""
        if state.pending_stop is not None:
            position, records = state.pending_stop
            self._released.extend((position, r) for r in records)
            state.pending_stop = None
            state.status = "stopped"

    # ------------------------------------------------------------------ helpers

    def _decode(self, segments: list[bytes]) -> list[str]:
        try:
            return [s.decode("utf-8") for s in segments]
        except UnicodeDecodeError as exc:
            charset = segments[0].split(b"|")[17:18]
            if charset and charset[0].strip().upper() in (b"8859/1", b"8859/15"):
                return [s.decode("latin-1") for s in segments]
            msg = f"not UTF-8 ({exc.reason} at byte {exc.start}) and MSH-18 names no other charset"
            raise ParseError(msg) from exc

    def _dispatch(self, msg: Hl7Message, position: str) -> list[Record]:
        msh = msg.segments[0]
        mtype, trigger = msg.comp(msh, 9, 1), msg.comp(msh, 9, 2)
        if not mtype:
            raise ParseError("MSH-9 message type is missing (truncated MSH?)")
        ctx = _Context(self, msg, position)
        if mtype == "ORU" and trigger == "R42":
            return self._pcd10(ctx)
        if mtype == "ORU" and trigger == "R01":
            if any(o.term is Term.EVT_COND for o in ctx.obxs):
                return self._pcd10(ctx)  # some vendors send PCD-10 events as R01
            return self._pcd01(ctx)
        if mtype == "ORU" and trigger == "R40":
            return self._pcd04(ctx)
        if mtype == "ADT":
            return self._adt(ctx, trigger)
        if mtype == "ACK":
            ack = msg.comp(msg.first("MSA"), 1, 1)
            return [
                Reject(
                    self.label,
                    position,
                    f"an acknowledgement (ACK{' ' + quote(ack, 8) if ack else ''}) carries no "
                    "event; skipped",
                    "warning",
                )
            ]
        if mtype == "RGV":
            msg_0 = (
                f"{quote(mtype + '^' + trigger, 40)} (PCD-03) is an infusion order sent to a "
                "pump, not a delivery event; the pump's PCD-10 messages report what it did"
            )
            raise InputError(msg_0)
        msg_0 = f"message type {quote(mtype + '^' + trigger, 40)} is not one pumpguard reads"
        raise InputError(msg_0)

    def _channel(self, pump: str, channel: str) -> _Channel:
        key = (pump, channel)
        state = self._channels.get(key)
        if state is None:
            state = self._channels[key] = _Channel()
        return state

    # ------------------------------------------------------------------ PCD-10

    def _warn(self, ctx: _Context, reason: str) -> Reject:
        return Reject(self.label, ctx.position, reason, "warning")

    def _pcd10(self, ctx: _Context) -> list[Record]:
        evt = next((o for o in ctx.obxs if o.term is Term.EVT_COND), None)
        if evt is None:
            raise InputError("PCD-10 message has no MDC_ATTR_EVT_COND row; no event to read")
        ev_code = ctx.msg.comp([evt.value], 0, 1)
        ev_refid = ctx.msg.comp([evt.value], 0, 2)
        kind = lookup(ev_code, ev_refid)
        ts = ctx.time(evt)
        pump = ctx.pump_id()
        source = next((o for o in ctx.obxs if o.term is Term.EVT_SOURCE), None)
        where = source.value.strip() if source is not None else evt.position
        vmd, chan_prefix = _hierarchy(where)
        if vmd == 0:
            vmds = ctx.vmds()
            if len(vmds) != 1:
                msg = (
                    f"event at device level ({quote(where) if where else 'no OBX-4'}) with "
                    f"{len(vmds)} channels (VMDs) and no MDC_ATTR_EVT_SOURCE: the channel "
                    "cannot be told"
                )
                raise InputError(msg)
            vmd = vmds[0]
        channel = channel_letter(vmd)
        state = self._channel(pump, channel)
        named, why = ctx.named_patient()

        if kind is Term.PATIENT_CHANGE:
            self.binder.associate(pump, named, ts)
            who = f"patient {_short(named)}" if named else f"no patient ({why})"
            return [self._warn(ctx, f"pump {pump} associated with {who} from {ts.isoformat()}")]
        if kind not in (
            Term.DELIV_START,
            Term.DELIV_STOP,
            Term.DELIV_COMP,
            Term.PROG_CLEARED,
            Term.VOL_COUNTERS_CLEARED,
        ):
            name = quote(ev_refid or ev_code or "?", 80)
            return [self._warn(ctx, f"PCD-10 event {name} is not mapped; ignored")]

        if kind is not Term.DELIV_START:
            self._release(state)
        prog = ctx.program(f"1.{vmd}.", chan_prefix)
        base: dict[str, Any] = {
            "ts": ts,
            "pump_id": pump,
            "channel": channel,
            **ctx.source_field(),
        }
        emit = _Emitter(ctx, base, pump, ts, named, why)

        if kind in (Term.PROG_CLEARED, Term.VOL_COUNTERS_CLEARED):
            state.status = "ended"
            what = "program" if kind is Term.PROG_CLEARED else "volume counters"
            return [
                self._warn(
                    ctx,
                    f"{what} cleared on pump {pump} channel {channel}: no event of its own "
                    "(the next start begins a new program)",
                )
            ]
        if kind is Term.DELIV_COMP:
            state.status = "ended"
            state.bolus_active = False
            return emit(
                "pump.infusion_completed",
                prog,
                bag_id=prog.bag_id or state.bag,
                volume_infused_ml=prog.volume_infused_ml,
            )
        if kind is Term.DELIV_STOP:
            reason, notes = _stop_reason(prog)
            if prog.not_delivering_reason == _SWITCHING and state.status == "running":
                # A source switch: bolus, piggyback or new rate follows; decided at the START.
                state.pending_stop = (
                    ctx.position,
                    emit("pump.infusion_stopped", prog, reason="other"),
                )
                return [
                    self._warn(
                        ctx,
                        f"delivery stop on pump {pump} channel {channel} to switch source: held "
                        "until the channel's next START tells a bolus or rate change from a stop",
                    )
                ]
            state.status = "stopped"
            state.bolus_active = False
            return [self._warn(ctx, n) for n in notes] + emit(
                "pump.infusion_stopped", prog, reason=reason
            )
        return self._start(ctx, state, prog, emit)

    def _start(self, ctx: _Context, state: _Channel, prog: Program, emit: _Emitter) -> list[Record]:
        source = prog.active_source
        kind = _ACTIVE_SOURCES.get(source) if source else "primary"
        if kind is None:
            msg = (
                f"active source {quote(source, 80)} is not one pumpguard knows "
                f"({', '.join(_ACTIVE_SOURCES)}): a bolus cannot be told from a start; "
                "never guessed"
            )
            raise InputError(msg)
        if kind == "bolus":
            state.pending_stop = None
            state.bolus_active = True
            if prog.vtbi_ml is None:
                problem = prog.unit_problems.get("vtbi_ml", "no MDC_VOL_FLUID_TBI row")
                return [emit.reject(f"bolus START without a bolus volume: {problem}")]
            return emit("pump.bolus", prog, volume_ml=prog.vtbi_ml)
        new_drug = prog.drug is not None and state.drug is not None and prog.drug != state.drug
        new_bag = prog.bag_id is not None and state.bag is not None and prog.bag_id != state.bag
        out: list[Record]
        if state.pending_stop is not None or state.bolus_active:
            was_bolus = state.bolus_active
            state.pending_stop = None
            state.bolus_active = False
            if new_drug or new_bag:
                out = self._started(state, prog, emit, new_bag)
            elif prog.rate_ml_h is not None and (not was_bolus or prog.rate_ml_h != state.rate):
                out = emit(
                    "pump.rate_changed",
                    prog,
                    rate_ml_h=prog.rate_ml_h,
                    dose_mcg_day=prog.dose_mcg_day,
                )
                state.rate = prog.rate_ml_h
            else:
                what = "the bolus" if was_bolus else "the source switch"
                out = [
                    self._warn(
                        ctx,
                        f"START after {what} on pump {emit.pump} channel {emit.base['channel']} "
                        "continues the program as it was: no event",
                    )
                ]
        elif state.status == "stopped" and not new_drug and not new_bag:
            out = emit("pump.infusion_resumed", prog, rate_ml_h=prog.rate_ml_h)
            if prog.rate_ml_h is not None:
                state.rate = prog.rate_ml_h
        else:
            out = self._started(state, prog, emit, new_bag)
        state.status = "running"
        return out

    def _started(
        self, state: _Channel, prog: Program, emit: _Emitter, new_bag: bool
    ) -> list[Record]:
        out: list[Record] = []
        if new_bag and prog.bag_id is not None:
            out += emit("pump.bag_changed", prog, bag_id=prog.bag_id, previous_bag_id=state.bag)
        out += emit(
            "pump.infusion_started",
            prog,
            drug=prog.drug,
            rate_ml_h=prog.rate_ml_h,
            dose_mcg_day=prog.dose_mcg_day,
            bag_id=prog.bag_id,
            vtbi_ml=prog.vtbi_ml,
            concentration_mcg_ml=prog.concentration_mcg_ml,
        )
        state.drug = prog.drug or state.drug
        state.rate = prog.rate_ml_h
        state.bag = prog.bag_id or state.bag
        return out

    # ------------------------------------------------------------------ PCD-01

    def _pcd01(self, ctx: _Context) -> list[Record]:
        pump = ctx.pump_id()
        named, why = ctx.named_patient()
        vmds = ctx.vmds()
        if not vmds:
            raise InputError("PCD-01 message has no pump channel (VMD) rows")
        out: list[Record] = []
        for vmd in vmds:
            channel = channel_letter(vmd)
            where = f"pump {pump} channel {channel}"
            prog = ctx.program(f"1.{vmd}.", None)
            status_row = ctx.status_row(f"1.{vmd}.")
            text = prog.delivery_status
            if not text:
                out.append(self._warn(ctx, f"status of {where} names no delivery status: no event"))
                continue
            if text not in _DELIVERY_STATUS:
                raw = status_row.value if status_row is not None else text
                known = ", ".join(_DELIVERY_STATUS)
                out.append(
                    Reject(
                        self.label,
                        ctx.position,
                        f"delivery status {quote(raw, 80)} of {where} is not one pumpguard "
                        f"knows ({known}); no start or stop is assumed",
                    )
                )
                continue
            delivering = _DELIVERY_STATUS[text]
            if delivering is None:
                out.append(self._warn(ctx, f"{where} is transitioning: no event until it settles"))
                continue
            ts = ctx.time(status_row)
            state = self._channel(pump, channel)
            base = {"ts": ts, "pump_id": pump, "channel": channel, **ctx.source_field()}
            emit = _Emitter(ctx, base, pump, ts, named, why, index=len(out))
            prev = state.delivering01
            state.delivering01 = delivering
            if prev is None:
                if delivering:
                    out.append(
                        self._warn(
                            ctx,
                            f"first status of {where} says delivering; its start time is "
                            "unknown, so no start event is made",
                        )
                    )
                    state.status = "running"
                    state.drug, state.rate, state.bag = prog.drug, prog.rate_ml_h, prog.bag_id
                else:
                    why_not = prog.not_delivering_reason or "no reason given"
                    out.append(
                        self._warn(
                            ctx,
                            f"first status of {where} says not delivering ({quote(why_not, 80)}); "
                            "nothing was running to stop, so no event is made",
                        )
                    )
                continue
            if delivering and not prev:
                new = (prog.drug is not None and prog.drug != state.drug) or (
                    prog.bag_id is not None and prog.bag_id != state.bag
                )
                if state.status == "stopped" and not new:
                    out += emit("pump.infusion_resumed", prog, rate_ml_h=prog.rate_ml_h)
                    state.rate = prog.rate_ml_h or state.rate
                else:
                    out += self._started(state, prog, emit, new_bag=False)
                state.status = "running"
            elif prev and not delivering:
                if prog.vtbi_remain_ml == 0:
                    out += emit(
                        "pump.infusion_completed",
                        prog,
                        bag_id=prog.bag_id or state.bag,
                        volume_infused_ml=prog.volume_infused_ml,
                    )
                    state.status = "ended"
                else:
                    reason, notes = _stop_reason(prog)
                    out += [self._warn(ctx, n) for n in notes]
                    out += emit("pump.infusion_stopped", prog, reason=reason)
                    state.status = "stopped"
            elif delivering and prog.rate_ml_h is not None and prog.rate_ml_h != state.rate:
                out += emit(
                    "pump.rate_changed",
                    prog,
                    rate_ml_h=prog.rate_ml_h,
                    dose_mcg_day=prog.dose_mcg_day,
                )
                state.rate = prog.rate_ml_h
            else:
                now = "delivering" if delivering else "not delivering"
                out.append(self._warn(ctx, f"status of {where} unchanged ({now}): no event"))
        return out

    # ------------------------------------------------------------------ PCD-04

    def _pcd04(self, ctx: _Context) -> list[Record]:
        msg = ctx.msg
        obr = msg.first("OBR")
        facets = {
            Term.ALERT_SOURCE,
            Term.EVENT_PHASE,
            Term.ALARM_STATE,
            Term.INACTIVATION_STATE,
            Term.ALARM_PRIORITY,
            Term.ALERT_TYPE,
            Term.ALERT_TEXT,
        }
        ident = next(
            (
                o
                for o in ctx.obxs
                if o.term not in facets and o.term not in (Term.MDS, Term.VMD, Term.CHANNEL)
            ),
            None,
        )
        if ident is None:
            raise InputError("PCD-04 message has no alarm identification OBX row")
        term = ident.term
        named_term = _obx_name(ident)
        if term is Term.EVT_ALARM and ident.value:
            code, refid = msg.comp([ident.value], 0, 1), msg.comp([ident.value], 0, 2)
            term = lookup(code, refid)
            named_term = refid or code
        phase_row = next((o for o in ctx.obxs if o.term is Term.EVENT_PHASE), None)
        if phase_row is None:
            raise InputError("PCD-04 message has no MDC_ATTR_EVENT_PHASE row (start/update/end)")
        phase = (msg.comp([phase_row.value], 0, 1) or msg.comp([phase_row.value], 0, 2)).lower()
        if phase not in _PHASES:
            msg_0 = (
                f"PCD-04 event phase {quote(phase, 80)} is not one pumpguard knows "
                f"({', '.join(sorted(_PHASES))})"
            )
            raise InputError(msg_0)
        # The alarm instance: OBR-29's placer part, else its filler part (B. Braun sends
        # "^id&..."), else this message's own OBR-3 (the first message of an alarm).
        key = msg.comp(obr, 29, 1) or msg.comp(obr, 29, 2) or msg.comp(obr, 3, 1)
        if not key:
            raise InputError("PCD-04 alarm has neither OBR-29 parent nor OBR-3 id to follow it by")
        pump = ctx.pump_id()
        seen = self._alarms.setdefault(pump, set())
        ts = ctx.time(ident)
        vmd, _ = _hierarchy(ident.position)
        channel = channel_letter(vmd or 1)
        named, why = ctx.named_patient()
        base = {"ts": ts, "pump_id": pump, "channel": channel, **ctx.source_field()}
        emit = _Emitter(ctx, base, pump, ts, named, why)
        out: list[Record] = []
        if term is None or (term not in _ALARM_KIND and term is not Term.EVT_ALARM):
            out.append(
                self._warn(
                    ctx,
                    f"alarm {quote(named_term, 80)} has no canonical kind: sent as 'other'",
                )
            )
        alarm = _ALARM_KIND.get(term, "other") if term is not None else "other"
        instance = f"alarm {quote(key, 80)} of pump {pump}"
        if phase == "end":
            seen.discard(key)
            return out + emit("pump.alarm", None, alarm=alarm, cleared=True)
        if key in seen:
            state = _facet(ctx, Term.ALARM_STATE)
            inactivation = _facet(ctx, Term.INACTIVATION_STATE)
            detail = ", ".join(p for p in (state, inactivation) if p)
            return [
                self._warn(
                    ctx,
                    f"{phase} of {instance}, already reported"
                    + (f" ({quote(detail, 80)})" if detail else "")
                    + ": the same alarm episode, no new event",
                )
            ]
        seen.add(key)
        return out + emit("pump.alarm", None, alarm=alarm)

    # ------------------------------------------------------------------ ADT

    def _adt(self, ctx: _Context, trigger: str) -> list[Record]:
        msg = ctx.msg
        evn, pv1 = msg.first("EVN"), msg.first("PV1")
        out: list[Record] = []
        evn_type = msg.comp(evn, 1, 1)
        if evn_type and evn_type != trigger:
            out.append(
                Reject(
                    self.label,
                    ctx.position,
                    f"EVN-1 says {quote(evn_type, 40)} but MSH-9 says {quote(trigger, 40)}; "
                    "MSH-9 trusted",
                    level="warning",
                )
            )
        patient = ctx.named_patient()[0]
        if patient is None:
            raise InputError("ADT message names no patient (PID-3 empty or PID-31=Y)")
        if trigger in ("A01", "A04", "A13"):
            ts_fields = [("PV1-44", pv1, 44)]
        elif trigger == "A03":
            ts_fields = [("PV1-45", pv1, 45)]
        elif trigger in ("A02", "A08", "A11", "A12"):
            ts_fields = []
        else:
            msg_0 = f"ADT^{quote(trigger, 40)} is not an encounter event pumpguard reads"
            raise InputError(msg_0)
        ts_fields += [("EVN-6", evn, 6), ("EVN-2", evn, 2), ("MSH-7", msg.segments[0], 7)]
        ts = None
        for name, seg, n in ts_fields:
            raw = msg.comp(seg, n, 1)
            if raw:
                ts = parse_dtm(raw, self.zone, name)
                break
        if ts is None:
            raise InputError("ADT message has no event time (PV1-44/45, EVN-6, EVN-2, MSH-7)")
        base = {"ts": ts, "patient_id": patient, **ctx.source_field()}
        location = _location(msg, pv1, 3)

        def setting() -> str:
            klass = msg.comp(pv1, 2, 1)
            mapped = self.config.pv1_patient_class.get(klass)
            if mapped is None:
                msg_0 = (
                    f"PV1-2 patient class {quote(klass, 40) if klass else '(empty)'} maps to no "
                    "setting; add it to pv1_patient_class in the adapter config (never guessed)"
                )
                raise InputError(msg_0)
            return mapped.value

        emit = _Emitter(ctx, base, None, ts, patient, "")
        if trigger in ("A01", "A04"):
            out += emit("encounter.admitted", None, setting=setting(), location=location)
            self._adt_last[patient] = (setting(), location)
        elif trigger == "A02":
            out += emit("encounter.transferred", None, setting=setting(), location=location)
            self._adt_last[patient] = (setting(), location)
        elif trigger == "A03":
            out += emit("encounter.discharged", None)
        elif trigger == "A08":
            now = (setting(), location)
            if self._adt_last.get(patient, now) == now:
                out.append(
                    Reject(
                        self.label,
                        ctx.position,
                        "A08 update changes neither setting nor location; no encounter event",
                        level="warning",
                    )
                )
            else:
                out += emit("encounter.transferred", None, setting=now[0], location=location)
            self._adt_last[patient] = now
        else:
            note = {
                "A11": "cancel admit: emitted as encounter.discharged at the cancel time",
                "A12": "cancel transfer: emitted as encounter.transferred at the cancel time",
                "A13": "cancel discharge: emitted as encounter.admitted at the cancel time",
            }[trigger]
            out.append(
                Reject(
                    self.label,
                    ctx.position,
                    f"{note}; events v1 cannot retract the earlier event",
                    level="warning",
                )
            )
            if trigger == "A11":
                out += emit("encounter.discharged", None)
            elif trigger == "A12":
                out += emit("encounter.transferred", None, setting=setting(), location=location)
            else:
                out += emit("encounter.admitted", None, setting=setting(), location=location)
        return out


_ALARM_KIND: dict[Term, str] = {
    Term.OCCLUSION: "occlusion",
    Term.AIR_IN_LINE: "air_in_line",
    Term.DOOR_OPEN: "door_open",
    Term.BATTERY_LOW: "battery_low",
    Term.END_OF_INFUSION: "end_of_infusion",
    Term.MALFUNCTION: "malfunction",
}


_SWITCHING = "pump-stopped-switching-source"
_STOP_REASONS: dict[str, str] = {
    "pump-stopped-by-clinician": "user",
    "pump-stopped-alarming": "alarm",
    "pump-stopped-powered-off": "power",
    "pump-stopped-other": "other",
    _SWITCHING: "other",
}
"""IHE PCD Not-Delivering Reason → canonical stop reason; anything else is said, not mapped."""

_DELIVERY_STATUS: dict[str, bool | None] = {
    "pump-delivery-status-delivering": True,
    "pump-delivery-status-not-delivering": False,
    "pump-delivery-status-transitioning": None,
    "pump-status-infusing": True,
    "pump-status-not-infusing": False,
}
"""Current Delivery Status (and the older Infusing Status) → delivering; None = no state yet."""

_ACTIVE_SOURCES: dict[str, str] = {
    "pump-source-info-primary": "primary",
    "pump-source-info-secondary": "secondary",
    "pump-source-info-clinician": "bolus",
    "pump-source-info-loading": "bolus",
    "pump-source-info-pca": "bolus",
}
"""Active Sources at a START: a clinician, loading or PCA dose is a bolus, not a new program."""

_PHASES = frozenset(("start", "update", "continue", "escalate", "de-escalate", "reset", "end"))
"""ACM event phases (MDC_ATTR_EVENT_PHASE); every one but ``end`` keeps the alarm open."""

_MAX_CHANNELS = 26
_MAX_ID = 199  # HL7 v2.6 EI.1 (entity identifier) length
_MAX_REASON = 1000


def _stop_reason(prog: Program) -> tuple[str, list[str]]:
    """The canonical stop reason and what had to be said to get it (never a silent 'other')."""
    text = prog.not_delivering_reason
    if not text:
        return "other", ["no not-delivering reason given: stop reason 'other'"]
    reason = _STOP_REASONS.get(text)
    if reason is None:
        known = ", ".join(_STOP_REASONS)
        note = f"not-delivering reason {quote(text, 80)} is not one pumpguard knows ({known}): "
        return "other", [note + "stop reason 'other'"]
    if reason == "alarm":
        if prog.alarm is Term.OCCLUSION:
            return "occlusion", []
        if prog.alarm is Term.AIR_IN_LINE:
            return "air_in_line", []
    return reason, []


def _bounded(record: Record) -> Record:
    """A reject whose reason a person can read: quoted values are cut where they are made;
    this cuts what came from elsewhere (a validation error echoing a 100 KB field)."""
    if isinstance(record, Reject) and len(record.reason) > _MAX_REASON:
        cut = f"{record.reason[:_MAX_REASON]}... (reason cut at {_MAX_REASON} characters)"
        return dataclasses.replace(record, reason=cut)
    return record


def _fate(records: list[Record]) -> Literal["event", "warning", "reject"]:
    """One message's fate for the tally: an event wins, then an error, then a warning."""
    if any(not isinstance(r, Reject) for r in records):
        return "event"
    if any(isinstance(r, Reject) and r.level == "error" for r in records):
        return "reject"
    return "warning"


def _facet(ctx: _Context, term: Term) -> str:
    row = next((o for o in ctx.obxs if o.term is term), None)
    if row is None:
        return ""
    return ctx.msg.comp([row.value], 0, 1) or ctx.msg.comp([row.value], 0, 2)


def _number_part(text: str) -> int | None:
    # ASCII digits only (str.isdigit() takes "²"), and bounded: int() refuses 4,300+ digits.
    if not text or len(text) > 9 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _hierarchy(position: str) -> tuple[int, str | None]:
    """(VMD number, channel prefix) from an OBX-4 like ``1.1.2.0``; VMD 0 = device level."""
    parts = position.strip().split(".")
    if len(parts) < 2:
        return 0, None
    if parts[1].isascii() and parts[1].isdigit() and len(parts[1]) > 9:
        return 10**9, None  # a number, but no pump has that many channels: channel_letter says so
    vmd = _number_part(parts[1])
    if vmd is None:
        return 0, None
    chan = _number_part(parts[2]) if len(parts) > 2 else None
    return vmd, (f"{parts[0]}.{vmd}.{chan}." if chan else None)


def _location(msg: Hl7Message, seg: list[str] | None, n: int) -> str | None:
    parts = [msg.comp(seg, n, c) for c in (1, 2, 3)]
    text = "/".join(p for p in parts if p)
    return text or None


class _Context:
    """One message being mapped: cached OBX rows and the lookups every handler needs."""

    __slots__ = ("_obxs", "msg", "position", "reader")

    def __init__(self, reader: Hl7Reader, msg: Hl7Message, position: str) -> None:
        self.reader = reader
        self.msg = msg
        self.position = position
        self._obxs: list[Obx] | None = None

    @property
    def obxs(self) -> list[Obx]:
        if self._obxs is None:
            self._obxs = [_read_obx(self.msg, s) for s in self.msg.segments if s[0] == "OBX"]
        return self._obxs

    @property
    def label(self) -> str:
        return self.reader.label

    def event_id(self, index: int) -> str:
        control = self.msg.comp(self.msg.segments[0], 10, 1)
        if not control:
            # No control id: a content hash, so a resent copy is still a duplicate.
            raw = "\r".join("|".join(s) for s in self.msg.segments)
            control = "hl7-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
        return control if index == 0 else f"{control}#{index + 1}"

    def source_field(self) -> dict[str, str]:
        sender = self.msg.comp(self.msg.segments[0], 3, 1)
        return {"source": sender} if sender else {}

    def time(self, row: Obx | None) -> datetime:
        if row is not None and row.ts:
            return parse_dtm(self.msg.comp([row.ts], 0, 1), self.reader.zone, "OBX-14")
        obr = self.msg.first("OBR")
        raw = self.msg.comp(obr, 7, 1)
        if not raw:
            raise InputError("no event time: neither OBX-14 nor OBR-7 is set")
        return parse_dtm(raw, self.reader.zone, "OBR-7")

    def pump_id(self) -> str:
        """The pump's id from OBX-18 of the device (MDS) row, else of the first row naming one.

        Which components make the id is the feed's choice (``pump_id_components``):
        B. Braun puts the pump's serial in component 1 and the same placeholder
        EUI-64 on every pump in component 3, so by default component 1 is read first.
        """
        msg = self.msg
        rows = [o for o in self.obxs if len(o.seg) > 18 and o.seg[18]]
        if not rows:
            raise InputError("no device identifier: no OBX-18 names the pump")
        row = next((o for o in rows if o.term is Term.MDS), rows[0])
        msh = msg.segments[0]
        components = self.reader.config.pump_id_components_for(
            msg.comp(msh, 3, 1), msg.comp(msh, 4, 1)
        )
        for c in components:
            value = msg.comp(row.seg, 18, c)
            if len(value) > _MAX_ID:
                msg_0 = (
                    f"OBX-18 component {c} {quote(value, 80)} is longer than the {_MAX_ID} "
                    "characters HL7 allows an entity identifier; not a pump id"
                )
                raise InputError(msg_0)
            if value:
                return value
        listed = ", ".join(str(c) for c in components)
        msg_0 = (
            f"no device identifier: OBX {quote(row.setid, 20)} OBX-18 {quote(row.seg[18], 80)} "
            f"has nothing in component(s) {listed} (pump_id_components)"
        )
        raise InputError(msg_0)

    def named_patient(self) -> tuple[str | None, str]:
        msg = self.msg
        pid = msg.first("PID")
        if pid is None:
            return None, "the message has no PID segment"
        if msg.comp(pid, 31, 1).upper() == "Y":
            return None, "the message names no patient (PID-31=Y, identity unknown)"
        wanted = self.reader.config.patient_identifier_type
        for rep in range(msg.reps(pid, 3)):
            ident = msg.comp(pid, 3, 1, rep)
            if ident and (wanted is None or msg.comp(pid, 3, 5, rep) == wanted):
                return ident, ""
        if wanted is not None and msg.reps(pid, 3):
            return None, f"PID-3 has no identifier of type {wanted}"
        return None, "the message names no patient (PID-3 empty)"

    def vmds(self) -> list[int]:
        """The channels (VMDs): those with a VMD row, else every VMD any row names."""
        declared: list[int] = []
        found: list[int] = []
        for o in self.obxs:
            vmd, _ = _hierarchy(o.position)
            if not vmd:
                continue
            if o.term is Term.VMD and vmd not in declared:
                declared.append(vmd)
            if vmd not in found:
                found.append(vmd)
        return declared or found

    def status_row(self, prefix: str) -> Obx | None:
        for o in self.obxs:
            if o.term in (Term.DELIVERY_STATUS, Term.INFUSING_STATUS) and o.position.startswith(
                prefix
            ):
                return o
        return None

    def program(self, vmd_prefix: str, chan_prefix: str | None) -> Program:
        """The channel's values; rows of the event's source channel win over the VMD's."""
        msg = self.msg
        rows: dict[Term, Obx] = {}
        weight: Obx | None = None
        for o in self.obxs:
            if o.term is None:
                continue
            if o.term is Term.WEIGHT:
                weight = weight or o
                continue
            if not o.position.startswith(vmd_prefix):
                continue
            if o.term not in rows or (chan_prefix and o.position.startswith(chan_prefix)):
                if o.term in rows and chan_prefix and rows[o.term].position.startswith(chan_prefix):
                    continue
                rows[o.term] = o
        prog = Program()
        if weight is not None:
            prog.weight_kg = self._number(weight, "kg", prog, "weight_kg")
        if Term.RATE in rows or Term.RATE_CURRENT in rows:
            row = rows.get(Term.RATE) or rows[Term.RATE_CURRENT]
            prog.rate_ml_h = self._number(row, "mL/h", prog, "rate_ml_h")
        if Term.DOSE_RATE in rows:
            prog.dose_mcg_day = self._number(
                rows[Term.DOSE_RATE], "mcg/day", prog, "dose_mcg_day", prog.weight_kg
            )
        if Term.VTBI in rows:
            prog.vtbi_ml = self._number(rows[Term.VTBI], "mL", prog, "vtbi_ml")
        if Term.VTBI_REMAIN in rows:
            prog.vtbi_remain_ml = self._number(rows[Term.VTBI_REMAIN], "mL", prog, "vtbi_remain")
        if Term.VOL_DELIVERED in rows:
            prog.volume_infused_ml = self._number(
                rows[Term.VOL_DELIVERED], "mL", prog, "volume_infused_ml"
            )
        if Term.CONCENTRATION in rows:
            prog.concentration_mcg_ml = self._number(
                rows[Term.CONCENTRATION], "mcg/mL", prog, "concentration_mcg_ml"
            )
        if Term.DRUG_NAME in rows:
            prog.drug = msg.unescape(rows[Term.DRUG_NAME].value).strip() or None
        if Term.CONTAINER_ID in rows:
            prog.bag_id = msg.unescape(rows[Term.CONTAINER_ID].value).strip() or None
        for term, attr in (
            (Term.DELIVERY_STATUS, "delivery_status"),
            (Term.NOT_DELIVERING_REASON, "not_delivering_reason"),
            (Term.ACTIVE_SOURCES, "active_source"),
        ):
            if term in rows:
                setattr(prog, attr, self._enum(rows[term]))
        if not prog.delivery_status and Term.INFUSING_STATUS in rows:
            prog.delivery_status = self._enum(rows[Term.INFUSING_STATUS])
        if Term.ALARM_CONDITION in rows:
            v = rows[Term.ALARM_CONDITION].value
            prog.alarm = lookup(msg.comp([v], 0, 1), msg.comp([v], 0, 2))
        return prog

    def _enum(self, row: Obx) -> str:
        # CWE "^pump-status-infusing": the text is component 2 (component 1 is the code).
        text = self.msg.comp([row.value], 0, 2) or self.msg.comp([row.value], 0, 1)
        return text.lower()

    def _number(
        self, row: Obx, target: str, prog: Program, name: str, weight: float | None = None
    ) -> float | None:
        text = row.value.strip()
        if not text:
            return None
        if not _NM.match(text):
            msg = f"{_row_name(row)} value {quote(text)} is not a number (NM)"
            raise InputError(msg)
        value = float(text)
        if not math.isfinite(value):
            msg = f"{_row_name(row)} value {quote(text, 40)} is too large"
            raise InputError(msg)
        if value < 0:
            msg = f"{_row_name(row)} value {quote(text, 40)} is negative"
            raise InputError(msg)
        if row.unit is None:
            shown = quote(row.unit_raw, 80) if row.unit_raw else "(none)"
            prog.unit_problems[name] = f"{_row_name(row)} unit {shown} is unknown"
            return None
        try:
            return convert(value, row.unit, target, weight)
        except UnitError as exc:
            prog.unit_problems[name] = f"{_row_name(row)}: {exc}"
            return None


class _Emitter:
    """Builds canonical events for one message: ids, binding, validation, warnings."""

    __slots__ = ("base", "count", "ctx", "named", "pump", "ts", "why")

    def __init__(
        self,
        ctx: _Context,
        base: dict[str, Any],
        pump: str | None,
        ts: datetime,
        named: str | None,
        why: str,
        index: int = 0,
    ) -> None:
        self.ctx, self.base, self.pump, self.ts = ctx, base, pump, ts
        self.named, self.why = named, why
        self.count = index

    def reject(self, reason: str) -> Reject:
        return Reject(self.ctx.label, self.ctx.position, reason)

    def __call__(self, etype: str, prog: Program | None, **fields: Any) -> list[Record]:
        event_id = self.ctx.event_id(self.count)
        self.count += 1
        out: list[Record] = []
        try:
            patient = (
                self.ctx.reader.binder.resolve(self.pump, self.ts, self.named, self.why)
                if self.pump is not None
                else self.named
            )
        except BindingError as exc:
            return [Reject(self.ctx.label, self.ctx.position, exc.message, event_id=event_id)]
        data = {"event_id": event_id, "type": etype, "patient_id": patient, **self.base}
        problems = prog.unit_problems if prog is not None else {}
        for key, value in fields.items():
            if value is None:
                if key in problems:
                    # Required fields fail validation below with this reason attached.
                    out.append(
                        Reject(
                            self.ctx.label,
                            self.ctx.position,
                            f"{key} left out: {problems[key]}",
                            level="warning",
                            event_id=event_id,
                        )
                    )
                continue
            data[key] = value
        try:
            event = make_event(data)
        except ValidationError as exc:
            reason = describe_validation_error(exc)
            return [
                *out,
                Reject(self.ctx.label, self.ctx.position, f"{etype}: {reason}", event_id=event_id),
            ]
        out.append(event)
        return out


class Hl7Source(EventSource):
    """An HL7 v2 file (or bytes): one message after another, MLLP-framed or not.

    ``position`` names the message the record just yielded came from (read by the
    CLI when replay refuses an event later, e.g. a duplicate event_id); ``tally``
    counts one fate per message, and per note or stray line between messages.
    """

    name = "hl7"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        data: bytes | None = None,
        label: str | None = None,
        config: AdapterConfig | None = None,
    ) -> None:
        if path is None and data is None:
            raise ValueError("Hl7Source needs a path or data")
        self.path = Path(path) if path is not None else None
        self._data = data
        self.label = label or (str(path) if path is not None else "hl7")
        self.config = config
        self.tally = Tally()
        self.position = ""

    def __iter__(self) -> Iterator[Record]:
        data = self._data if self._data is not None else self.path.read_bytes()  # type: ignore[union-attr]
        self.tally = Tally()
        reader = Hl7Reader(self.config, self.label, tally=self.tally)
        for position, record in reader.read_located(data):
            self.position = position
            yield record
