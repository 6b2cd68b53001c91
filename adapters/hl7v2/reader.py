"""The reader: one feed's messages, each dispatched to its mapping, each counted once.

One record, one fate: every message, and every note or stray line between
messages, ends as events, a warning or a reject naming the file, the message
number and its line (``message 12 (line 40)``; the message's MSH-10 is its
event_id), and the :class:`Tally` counts each once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Literal

from pumpguard.adapters.base import Record, Reject, Tally
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.hl7v2.acm import pcd04
from pumpguard.adapters.hl7v2.adt import adt
from pumpguard.adapters.hl7v2.context import MessageContext
from pumpguard.adapters.hl7v2.framing import Stray, quote, split_messages
from pumpguard.adapters.hl7v2.message import Hl7Message, decode_segments
from pumpguard.adapters.hl7v2.pcd import ChannelState, pcd01, pcd10
from pumpguard.adapters.mdc import Term
from pumpguard.engine.errors import InputError, ParseError

__all__ = ["Hl7Reader"]

_MAX_REASON = 1000


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
        # The state the PCD and ADT mappings keep between messages, by pump channel,
        # by pump (open alarm episodes) and by patient (last setting and location).
        self.channels: dict[tuple[str, str], ChannelState] = {}
        self.alarms: dict[str, set[str]] = {}
        self.adt_last: dict[str, tuple[str, str | None]] = {}
        self.released: list[tuple[str, Record]] = []
        self.last_parsed: Hl7Message | None = None
        """The message :meth:`read_message` last parsed (None: it could not be parsed); the
        live mapper builds its ACK from it rather than parsing the message again."""
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
            for where, held in self.released:
                yield where, _bounded(held)
            self.released.clear()
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
        list: they wait in ``released`` with their own position.
        """
        self.last_parsed = None
        try:
            msg = self.last_parsed = self._parse(decode_segments(segments))
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
        out: list[tuple[str, Record]] = list(self.released)
        self.released.clear()
        for state in self.channels.values():
            if state.pending_stop is not None:
                position, records = state.pending_stop
                out.extend((position, r) for r in records)
                state.pending_stop = None
                state.status = "stopped"
        return out

    def warn(self, ctx: MessageContext, reason: str) -> Reject:
        """A warning for the message being read: it makes no event, and says why."""
        return Reject(self.label, ctx.position, reason, "warning")

    def release(self, state: ChannelState) -> None:
        """A held-back stop turned out to be a real stop: send it, under its own message."""
        if state.pending_stop is not None:
            position, records = state.pending_stop
            self.released.extend((position, r) for r in records)
            state.pending_stop = None
            state.status = "stopped"

    # ------------------------------------------------------------------ helpers

    def _dispatch(self, msg: Hl7Message, position: str) -> list[Record]:
        msh = msg.segments[0]
        mtype, trigger = msg.comp(msh, 9, 1), msg.comp(msh, 9, 2)
        if not mtype:
            raise ParseError("MSH-9 message type is missing (truncated MSH?)")
        ctx = MessageContext(self, msg, position)
        if mtype == "ORU" and trigger == "R42":
            return pcd10(self, ctx)
        if mtype == "ORU" and trigger == "R01":
            if any(o.term is Term.EVT_COND for o in ctx.obxs):
                return pcd10(self, ctx)  # some vendors send PCD-10 events as R01
            return pcd01(self, ctx)
        if mtype == "ORU" and trigger == "R40":
            return pcd04(self, ctx)
        if mtype == "ADT":
            return adt(self, ctx, trigger)
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
            reason = (
                f"{quote(mtype + '^' + trigger, 40)} (PCD-03) is an infusion order sent to a "
                "pump, not a delivery event; the pump's PCD-10 messages report what it did"
            )
            raise InputError(reason)
        reason = f"message type {quote(mtype + '^' + trigger, 40)} is not one pumpguard reads"
        raise InputError(reason)

    def channel(self, pump: str, channel: str) -> ChannelState:
        """The state of one pump channel, made on first use."""
        key = (pump, channel)
        state = self.channels.get(key)
        if state is None:
            state = self.channels[key] = ChannelState()
        return state


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
