"""Parsing: segments, fields and components of one message, and HL7 DTM times.

A split-on-demand reader (fields split once, components only when read).
``hl7.parse`` from python-hl7 gives the same fields but builds an object per
element and runs at ~700 PCD-10 messages/s on our VM, below the 5,000/s target;
it stays selectable (``hl7_parser: python-hl7``) and a test checks both give
the same events.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from pumpguard.adapters.hl7v2.framing import quote
from pumpguard.adapters.timestamps import in_utc_range, localize
from pumpguard.engine.errors import ParseError

__all__ = ["Hl7Message", "check_encoding", "decode_segments", "parse_dtm"]

_DTM = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?(?:([+-])(\d{2})(\d{2}))?$",
    re.ASCII,
)


def check_encoding(encoding: str, fs: str) -> None:
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
        check_encoding(encoding, fs)
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
        check_encoding(msh[2], msh[1])
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
        if c == 1 and not rep and value.isalnum():  # the common case: nothing to split
            return value
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


def decode_segments(segments: list[bytes]) -> list[str]:
    """Segments as text: UTF-8, or Latin-1 only when MSH-18 says so (never guessed)."""
    try:
        return [s.decode("utf-8") for s in segments]
    except UnicodeDecodeError as exc:
        charset = segments[0].split(b"|")[17:18]
        if charset and charset[0].strip().upper() in (b"8859/1", b"8859/15"):
            return [s.decode("latin-1") for s in segments]
        msg = f"not UTF-8 ({exc.reason} at byte {exc.start}) and MSH-18 names no other charset"
        raise ParseError(msg) from exc
