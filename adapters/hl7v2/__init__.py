"""HL7 v2 in and out: IHE PCD-10 (ORU^R42), PCD-01 (ORU^R01), PCD-04 (ORU^R40) and ADT.

What the pump side sends is a stream of OBX rows keyed by MDC terms and a
device hierarchy; what the engine needs is "the infusion stopped at 10:02 on
patient p1". One module per step, each arrow pointing down the list:

1. :mod:`.framing`: MLLP bytes, a UTF-8 BOM, LF or CRLF segment ends are
   normalised first, so vendor quirks never reach the parser; a byte stream is
   cut into messages and what lies between them (:func:`split_messages`).
2. :mod:`.message`: segments, fields and components, split on demand
   (:class:`Hl7Message`), and HL7 DTM times (:func:`parse_dtm`, the no-offset
   policy of :mod:`pumpguard.adapters.timestamps`).
3. :mod:`.context`: what the mappings read from one message: OBX rows, a
   channel's program in canonical units (:mod:`..units`), MDC terms
   (:mod:`..mdc`), ids, times, and the :class:`Emitter` that binds a patient
   (:class:`..config.Binder`) and validates the event.
4. :mod:`.pcd` (the pump state machine: IPEC's STOP/START pairs become bolus,
   pause, rate change and bag change; PCD-01 status), :mod:`.acm` (PCD-04
   alarm episodes) and :mod:`.adt` (encounters).
5. :mod:`.reader`: :class:`Hl7Reader` dispatches each message, keeps the
   per-feed state and counts one fate per record; :mod:`.source` wraps it as
   the :class:`Hl7Source` event source.

:mod:`.writer` is the reverse (canonical events out as HL7), for round-trip
tests, drills and the HL7 findings sink.

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

from pumpguard.adapters.hl7v2.context import channel_letter
from pumpguard.adapters.hl7v2.framing import split_messages
from pumpguard.adapters.hl7v2.message import Hl7Message, parse_dtm
from pumpguard.adapters.hl7v2.reader import Hl7Reader
from pumpguard.adapters.hl7v2.source import Hl7Source
from pumpguard.adapters.hl7v2.writer import (
    Hl7Writer,
    UnsupportedEvent,
    escape,
    format_dtm,
    frame,
    render_pcd01,
)

__all__ = [
    "Hl7Message",
    "Hl7Reader",
    "Hl7Source",
    "Hl7Writer",
    "UnsupportedEvent",
    "channel_letter",
    "escape",
    "format_dtm",
    "frame",
    "parse_dtm",
    "render_pcd01",
    "split_messages",
]
