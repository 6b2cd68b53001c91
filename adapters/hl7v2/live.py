"""One live HL7 v2 message (MLLP-unframed bytes) to events and an acknowledgement decision.

The MLLP listener hands over one message at a time; the service journals what
this returns, then sends the ACK. The mapping is the replay one (an
:class:`Hl7Reader` per feed, the same adapter config), so a message gives the
same events live as in a file. What differs is the edge:

- the charset comes from MSH-18 (UTF-8 when it is empty), as the sender
  declared it: bytes that do not decode are an ``AE`` naming the byte, never
  a crash or a guess;
- one MLLP block is one message: no MSH, text or junk in the block, several
  messages, or LF segment ends (HL7 ends segments with CR; files get LF from
  editors, a live link has no such excuse) are an ``AR`` saying which;
- state is kept per feed, keyed by the sending application and facility
  (MSH-3, MSH-4): the STOP/START pairing of one pump spans messages.

Every message ends in one :class:`MappedMessage` with its decision: ``AA``
once there is nothing wrong (events, or a warning saying why there are none),
``AE`` for a message read but refused (wrong charset, unbound pump, a value
that does not map), ``AR`` for one that cannot be read or is of a type
pumpguard does not take. The mapper is picklable (the service snapshots it).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import structlog
from pumpguard.adapters.base import Record, Reject, fate_of
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.hl7v2.ack import AckCode, ack
from pumpguard.adapters.hl7v2.framing import RawMessage, Stray, quote, split_messages
from pumpguard.adapters.hl7v2.message import Hl7Message
from pumpguard.adapters.hl7v2.reader import Hl7Reader
from pumpguard.engine.errors import BindingError, PumpguardError
from pumpguard.engine.events import Event

__all__ = ["CHARSETS", "Decision", "MappedMessage", "MessageMapper", "python_codec"]

log = structlog.get_logger("pumpguard.hl7.live")

CHARSETS: dict[str, str] = {
    "": "utf-8",
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "UNICODE UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "ISO IR101": "iso8859-2",
    "8859/3": "iso8859-3",
    "ISO IR109": "iso8859-3",
    "8859/4": "iso8859-4",
    "ISO IR110": "iso8859-4",
    "8859/5": "iso8859-5",
    "ISO IR144": "iso8859-5",
    "8859/6": "iso8859-6",
    "ISO IR127": "iso8859-6",
    "8859/7": "iso8859-7",
    "ISO IR126": "iso8859-7",
    "8859/8": "iso8859-8",
    "ISO IR138": "iso8859-8",
    "8859/9": "iso8859-9",
    "ISO IR148": "iso8859-9",
    "8859/15": "iso8859-15",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
}
"""HL7 table 0211 names (MSH-18) that pumpguard decodes, and the Python codec for each.

UTF-16/32 are left out on purpose: their MSH is not ASCII, so MSH-18 cannot even be read.
"""

SUPPORTED = {
    ("ORU", "R42"),
    ("ORU", "R01"),
    ("ORU", "R40"),
    ("ACK", ""),
    *(("ADT", t) for t in ("A01", "A02", "A03", "A04", "A08", "A11", "A12", "A13")),
}
"""Message types the reader maps (MSH-9.1, MSH-9.2); an ACK is read but never answered."""

Reason = Literal[
    "",
    "unparseable",
    "wrong charset",
    "unknown charset",
    "unmapped",
    "unbound pump",
    "rejected",
    "internal error",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer owed to the sender: MSA-1, a short reason key, MSA-3 text, ERR-3 code."""

    code: AckCode
    reason: Reason = ""
    text: str = ""
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class MappedMessage:
    """Everything one live message gave, for the journal, the engine and the ACK.

    ``events`` are validated canonical events, in order; they include stops an
    earlier message of the same feed held back and this one released (their
    event_id is the earlier message's). ``dedupe_key`` is ``MSH-3|MSH-4|MSH-10``
    (a content hash stands in for an empty MSH-10): a message seen again with the
    same key is a resend, to be answered again and not processed twice. ``answer``
    is False for an inbound ACK, which HL7 never acknowledges.
    """

    decision: Decision
    dedupe_key: str | None
    control_id: str
    charset: str | None
    feed: str
    events: list[Event] = field(default_factory=list)
    warnings: list[Reject] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    message: Hl7Message | None = None
    raw: bytes = b""
    answer: bool = True

    def ack(self, now: datetime) -> bytes:
        """The ACK bytes for this message (b"" for an inbound ACK: never answered)."""
        if not self.answer:
            return b""
        d = self.decision
        source = self.message if self.message is not None else self.raw
        return ack(source, d.code, d.text, error_code=d.error_code, now=now)


class _WatchedBinder(Binder):
    """The reader's binder, noting each binding failure so the ACK can say "unbound pump"."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.failures = 0

    def resolve(self, pump_id: str, ts: datetime, named: str | None, why_unnamed: str) -> str:
        try:
            return super().resolve(pump_id, ts, named, why_unnamed)
        except BindingError:
            self.failures += 1
            raise


def python_codec(msh18: str) -> str | None:
    """The Python codec for an MSH-18 value (its first repetition), or None if unknown."""
    name = " ".join(msh18.split("~")[0].split("^")[0].upper().split())
    codec = CHARSETS.get(name)
    return codecs.lookup(codec).name if codec is not None else None


@dataclass(slots=True)
class _Header:
    """MSH fields read from the raw bytes, before anything is decoded."""

    fields: list[bytes]

    def get(self, n: int) -> bytes:
        """Field n in HL7 numbering (MSH-1 is the separator itself)."""
        index = n - 1
        return self.fields[index] if 0 < index < len(self.fields) else b""


@dataclass(frozen=True, slots=True)
class _Envelope:
    """What is known of a message before it is decoded: enough to answer and to dedupe it."""

    raw: bytes
    feed: str = ""
    control_id: str = ""
    dedupe_key: str | None = None

    def refuse(self, decision: Decision, charset: str | None = None) -> MappedMessage:
        return MappedMessage(
            decision, self.dedupe_key, self.control_id, charset, self.feed, raw=self.raw
        )


class MessageMapper:
    """Maps live messages one at a time, keeping each feed's reader (and its state) between them.

    ``accept_lf`` lets a site whose gateway ends segments in LF through (the replay
    framing normalises them); by default they are refused, as HL7 ends segments in CR.
    """

    def __init__(self, config: AdapterConfig | None = None, *, accept_lf: bool = False) -> None:
        self.config = config or AdapterConfig()
        self.accept_lf = accept_lf
        self.readers: dict[tuple[str, str], Hl7Reader] = {}
        self.binders: dict[tuple[str, str], _WatchedBinder] = {}
        self.counts: dict[tuple[str, str], int] = {}

    def dedupe_key(self, data: bytes) -> str | None:
        """The message's ``MSH-3|MSH-4|MSH-10`` key, read without mapping it (None: no MSH)."""
        body = data.removeprefix(b"\xef\xbb\xbf")
        header = _read_msh(body)
        return None if header is None else _envelope(data, body, header).dedupe_key

    def map(self, data: bytes) -> MappedMessage:
        """One unframed message to its events and decision; never raises on any input."""
        try:
            return self._map(data)
        except Exception as exc:  # a bug must cost one message an AE, not the listener
            with contextlib.suppress(Exception):  # a broken log stream must not cost the AE
                log.exception("hl7.live_mapping_failed", bytes=len(data))
            text = f"internal error while mapping the message ({type(exc).__name__}); not read"
            return _Envelope(data).refuse(Decision("AE", "internal error", text, "207"))

    def _map(self, data: bytes) -> MappedMessage:
        body = data.removeprefix(b"\xef\xbb\xbf")
        header = _read_msh(body)
        if header is None:
            return _Envelope(data).refuse(Decision("AR", "unparseable", _no_msh(body), "100"))
        env = _envelope(data, body, header)
        if b"\n" in body.rstrip(b"\r\n") and not self.accept_lf:
            text = (
                "segments end in LF, not CR: HL7 v2 ends each segment with a carriage return "
                "(a file pasted or saved by an editor?); not read"
            )
            return env.refuse(Decision("AR", "unparseable", text, "100"))
        declared = _text(header.get(18))
        charset = python_codec(declared)
        if charset is None:
            text = (
                f"MSH-18 character set {quote(declared, 40)} is not one pumpguard decodes "
                f"({', '.join(n for n in CHARSETS if n)}); not read"
            )
            return env.refuse(Decision("AE", "unknown charset", text, "103"))
        try:
            decoded = body.decode(charset)
        except UnicodeDecodeError as exc:
            text = (
                f"the message does not decode as MSH-18 declares ({declared or 'empty: UTF-8'}"
                f"): {exc.reason} at byte {exc.start}; not read"
            )
            return env.refuse(Decision("AE", "wrong charset", text, "102"), charset)
        message = _one_message(list(split_messages(decoded.encode("utf-8"))))
        if isinstance(message, str):
            return env.refuse(Decision("AR", "unparseable", message, "100"), charset)
        return self._read(env, message.segments, charset)

    def _read(self, env: _Envelope, segments: list[bytes], charset: str) -> MappedMessage:
        """The message through its feed's reader, and the decision its records mean."""
        feed_key = _feed_key(env.feed)
        reader, binder = self._reader(feed_key)
        number = self.counts[feed_key] = self.counts.get(feed_key, 0) + 1
        position = f"message {number} (MSH-10 {quote(env.control_id, 40)})"
        failures = binder.failures
        records = reader.read_message(segments, position)
        released = [r for _, r in reader.released]
        reader.released.clear()
        reader.tally.note(fate_of(records))
        # The reader's own parse when it used the same parser (the default): not twice.
        same = self.config.hl7_parser != "python-hl7"
        message = reader.last_parsed if same else _parsed(segments)
        reader.last_parsed = None  # not kept in the mapper's snapshots
        decision = _decide(records, message, unbound=binder.failures > failures)
        rejects = [r for r in records if isinstance(r, Reject)]
        return MappedMessage(
            decision,
            env.dedupe_key,
            env.control_id,
            charset,
            env.feed,
            events=[r for r in [*released, *records] if not isinstance(r, Reject)],
            warnings=[r for r in rejects if r.level == "warning"],
            rejects=[r for r in rejects if r.level != "warning"],
            message=message,
            raw=env.raw,
            answer=_mtype(message) != ("ACK", ""),
        )

    def _reader(self, feed_key: tuple[str, str]) -> tuple[Hl7Reader, _WatchedBinder]:
        reader = self.readers.get(feed_key)
        if reader is None:
            reader = self.readers[feed_key] = Hl7Reader(self.config, f"mllp {_feed(feed_key)}")
            reader.binder = self.binders[feed_key] = _WatchedBinder(self.config)
        return reader, self.binders[feed_key]


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip()


def _feed(feed_key: tuple[str, str]) -> str:
    return f"{feed_key[0]}|{feed_key[1]}"


def _feed_key(feed: str) -> tuple[str, str]:
    sender, _, facility = feed.partition("|")
    return sender, facility


def _read_msh(body: bytes) -> _Header | None:
    """The MSH's fields as bytes (MSH must open the message), or None."""
    first = body.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 8:
        return None
    fs = first[3:4]
    return _Header([fs, *first[4:].split(fs)])


def _envelope(data: bytes, body: bytes, header: _Header) -> _Envelope:
    """Feed, control id and dedupe key from the raw MSH (MSH-3, MSH-4, MSH-10)."""
    cs = header.get(2)[:1] or b"^"
    control_id = _text(header.get(10).split(cs)[0])
    feed = _feed((_text(header.get(3)), _text(header.get(4))))
    if control_id:
        key = f"{feed}|{control_id}"
    else:  # no control id: the content stands in, so an identical resend is still a resend
        digest = hashlib.sha256(body.rstrip(b"\r\n")).hexdigest()[:32]
        key = f"{feed}|#sha256:{digest}"
    return _Envelope(data, feed, control_id, key)


def _no_msh(body: bytes) -> str:
    """Why a block that does not open with MSH is not read."""
    for item in split_messages(body):
        if isinstance(item, RawMessage) and item.problem is not None:
            return item.problem  # segments whose MSH line is missing
        break
    if not body.strip(b"\r\n \t"):
        return "empty MLLP block: no message in it; not read"
    return f"the block does not open with an MSH segment: {quote(body, 80)}; not HL7, not read"


def _one_message(items: list[RawMessage | Stray]) -> RawMessage | str:
    """The block's one well-formed message, or why it is not exactly that."""
    messages = [i for i in items if isinstance(i, RawMessage)]
    if len(messages) > 1:
        return f"{len(messages)} messages in one MLLP block (one block, one message); not read"
    for item in items:
        if isinstance(item, Stray):
            return f"text in the MLLP block besides the message: {item.reason}"
        if item.problem is not None:
            return item.problem
    return messages[0] if messages else "no message in the MLLP block; not read"


def _parsed(segments: list[bytes]) -> Hl7Message | None:
    try:
        return Hl7Message.parse([s.decode("utf-8") for s in segments])
    except PumpguardError:
        return None


def _mtype(message: Hl7Message | None) -> tuple[str, str]:
    if message is None:
        return "", ""
    msh = message.segments[0]
    mtype, trigger = message.comp(msh, 9, 1), message.comp(msh, 9, 2)
    return (mtype, "") if mtype == "ACK" else (mtype, trigger)


def _decide(records: list[Record], message: Hl7Message | None, *, unbound: bool) -> Decision:
    """AA when something was mapped or nothing is wrong; else why not, as AE or AR."""
    errors = [r for r in records if isinstance(r, Reject) and r.level != "warning"]
    warnings = [r for r in records if isinstance(r, Reject) and r.level == "warning"]
    has_events = any(not isinstance(r, Reject) for r in records)
    if has_events or not errors:
        said = "; ".join(r.reason for r in (errors or warnings)[:3])
        return Decision("AA", "", said)
    reason = errors[0].reason
    if message is None:
        return Decision("AR", "unparseable", reason, "100")
    mtype = _mtype(message)
    if mtype not in SUPPORTED:
        unknown_type = mtype[0] not in {t for t, _ in SUPPORTED}
        return Decision("AR", "unmapped", reason, "200" if unknown_type else "201")
    if unbound:
        return Decision("AE", "unbound pump", reason, "204")
    return Decision("AE", "rejected", reason, "102")
