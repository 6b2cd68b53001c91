"""HL7 v2 acknowledgements (original mode): the answer a sender waits for after each message.

python-hl7's ``Message.create_ack`` gives no MSA-3 text, no ERR segment and a
naive timestamp, so a sender told ``AE`` cannot say why, and a receiver in
another zone cannot place the time. This one swaps sender and receiver, stamps
an aware time with its offset, puts the reason in MSA-3 and, on ``AE``/``AR``,
an ERR segment with the HL7 table 0357 code. It is always pure ASCII (other
characters are written as ``\\xNN`` escapes), whatever the sender's charset,
so no decoder on the other side can fail on it; and a message with no
parseable MSH still gets its ``AR``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pumpguard.adapters.hl7v2.message import Hl7Message
from pumpguard.adapters.hl7v2.writer import format_dtm
from pumpguard.engine.errors import ParseError, PumpguardError

__all__ = ["ERROR_CODES", "AckCode", "AckSummary", "ack", "read_ack"]

AckCode = Literal["AA", "AE", "AR"]

ERROR_CODES: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
"""HL7 table 0357 (message error condition codes), the ERR-3 vocabulary."""

_ME = "PUMPGUARD"
_MAX_TEXT = 400  # MSA-3 is 80 characters in v2.5; receivers cut, but a 1 MB reason helps nobody
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class _Header:
    """What an ACK copies from the message it answers (already unescaped)."""

    sender: list[str]
    facility: list[str]
    receiver: list[str]
    receiving_facility: list[str]
    trigger: str
    control_id: str
    processing_id: str
    version: str


def _field(text: str, limit: int = _MAX_TEXT) -> str:
    """Text for one ACK field: one line, ASCII, HL7-escaped, bounded."""
    text = _CONTROL.sub(" ", text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def _hd(parts: list[str]) -> str:
    """An HD field (namespace^universal id^type) from its components."""
    return "^".join(_field(p, 199) for p in parts).rstrip("^")


def _msh_of(received: Hl7Message | bytes | None) -> Hl7Message | None:
    """The received message's MSH, parsed, or None when there is none to read."""
    if received is None or isinstance(received, Hl7Message):
        return received
    data = received.replace(b"\x0b", b"").replace(b"\x1c", b"")
    for raw in re.split(rb"\r\n|\n|\r", data):
        line = raw.strip(b" \t").removeprefix(b"\xef\xbb\xbf")
        if line.startswith(b"MSH"):
            try:
                return Hl7Message.parse([line.decode("utf-8", "replace")])
            except PumpguardError:
                return None
    return None


def _header(msg: Hl7Message | None) -> _Header:
    if msg is None:
        return _Header([], [], [], [], "", "", "P", "2.6")
    msh = msg.segments[0]

    def hd(n: int) -> list[str]:
        return [msg.comp(msh, n, c) for c in (1, 2, 3)]

    return _Header(
        sender=hd(3),
        facility=hd(4),
        receiver=hd(5),
        receiving_facility=hd(6),
        trigger=msg.comp(msh, 9, 2),
        control_id=msg.comp(msh, 10, 1),
        processing_id=msg.comp(msh, 11, 1) or "P",
        version=msg.comp(msh, 12, 1) or "2.6",
    )


def ack(
    received: Hl7Message | bytes | None,
    code: AckCode,
    text: str = "",
    *,
    error_code: str | None = None,
    now: datetime,
) -> bytes:
    """The ACK for ``received`` (a parsed message, raw bytes, or None when nothing is readable).

    ``now`` must be aware: it is written with its UTC offset. On ``AE``/``AR`` an ERR
    segment carries ``error_code`` (HL7 table 0357; default 207, application error)
    and the text; segments end in CR, no MLLP framing.
    """
    if now.utcoffset() is None:
        msg = "an ACK's time must be aware (it is written with its UTC offset)"
        raise ValueError(msg)
    head = _header(_msh_of(received))
    stamp = format_dtm(now.replace(microsecond=0))
    seed = f"{head.control_id}|{stamp}|{code}".encode()
    own_id = "PG" + hashlib.sha256(seed).hexdigest()[:18]  # 20 characters: MSH-10 in v2.5
    trigger = f"^{_field(head.trigger, 3)}" if head.trigger else ""
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            _hd(head.receiver) or _ME,
            _hd(head.receiving_facility) or _ME,
            _hd(head.sender),
            _hd(head.facility),
            stamp,
            "",
            f"ACK{trigger}^ACK",
            own_id,
            _field(head.processing_id, 3),
            _field(head.version, 8),
        ]
    )
    segments = [
        msh,
        "|".join(["MSA", code, _field(head.control_id, 199), _field(text)]).rstrip("|"),
    ]
    if code != "AA":
        err = error_code or "207"
        name = ERROR_CODES.get(err, "")
        ident = f"{_field(err, 8)}^{_field(name, 80)}^HL70357"
        segments.append(f"ERR|||{ident}|E||||{_field(text)}".rstrip("|"))
    return ("\r".join(segments) + "\r").encode("ascii")


@dataclass(frozen=True, slots=True)
class AckSummary:
    """What a sender reads back from an ACK: MSA-1, MSA-2, MSA-3 and ERR-3's code."""

    code: str
    control_id: str
    text: str
    error_code: str


def read_ack(data: bytes) -> AckSummary:
    """MSA-1/2/3 and ERR-3 of an ACK (a ParseError when it has no MSH or MSA)."""
    lines = [s for s in re.split(rb"\r\n|\n|\r", data.strip(b"\x0b\x1c\r\n")) if s]
    text = [s.decode("utf-8", "replace") for s in lines]
    if not text or not text[0].startswith("MSH"):
        reason = "the answer is not an HL7 message (no MSH)"
        raise ParseError(reason)
    msg = Hl7Message.parse(text)
    msa = msg.first("MSA")
    if msa is None:
        reason = "the answer has no MSA segment"
        raise ParseError(reason)
    err = msg.first("ERR")
    return AckSummary(
        code=msg.comp(msa, 1, 1),
        control_id=msg.comp(msa, 2, 1),
        text=msg.comp(msa, 3, 1),
        error_code=msg.comp(err, 3, 1),
    )
