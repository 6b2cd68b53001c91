"""PCD-04 (IHE ACM) alarms to canonical events: one event per alarm episode.

An alarm's phases (start, update, escalate..., end) arrive as separate messages
linked by OBR-29; the reader keeps the open episodes per pump, so a later phase
of an alarm already reported is said in a warning instead of raising it again.
Nothing enumerated is guessed: an alarm phase the reader does not know is a
reject, an alarm code with no canonical kind is sent as ``other`` and said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpguard.adapters.base import Record, Reject
from pumpguard.adapters.hl7v2.context import (
    Emitter,
    MessageContext,
    Obx,
    channel_letter,
    facet,
    hierarchy,
    obx_name,
)
from pumpguard.adapters.hl7v2.framing import quote
from pumpguard.adapters.hl7v2.message import Hl7Message
from pumpguard.adapters.mdc import ALARM_KINDS, Term, lookup
from pumpguard.engine.errors import InputError

if TYPE_CHECKING:
    from pumpguard.adapters.hl7v2.reader import Hl7Reader

__all__ = ["pcd04"]

_PHASES = frozenset(("start", "update", "continue", "escalate", "de-escalate", "reset", "end"))
"""ACM event phases (MDC_ATTR_EVENT_PHASE); every one but ``end`` keeps the alarm open."""


_ALARM_FACETS = frozenset(
    (
        Term.ALERT_SOURCE,
        Term.EVENT_PHASE,
        Term.ALARM_STATE,
        Term.INACTIVATION_STATE,
        Term.ALARM_PRIORITY,
        Term.ALERT_TYPE,
        Term.ALERT_TEXT,
        Term.MDS,
        Term.VMD,
        Term.CHANNEL,
    )
)
"""Rows of a PCD-04 message that describe the alarm or the device, not name the alarm."""


def pcd04(reader: Hl7Reader, ctx: MessageContext) -> list[Record]:
    """A PCD-04 alarm: one event per episode (OBR-29 names it), and one when it ends."""
    ident, term, named_term = _alarm_identity(ctx)
    phase = _alarm_phase(ctx)
    key = _alarm_key(ctx.msg)
    pump = ctx.pump_id()
    seen = reader.alarms.setdefault(pump, set())
    ts = ctx.time(ident)
    vmd, _ = hierarchy(ident.position)
    channel = channel_letter(vmd or 1)
    named, why = ctx.named_patient()
    base = {"ts": ts, "pump_id": pump, "channel": channel, **ctx.source_field()}
    emit = Emitter(ctx, base, pump, ts, named, why)
    out: list[Record] = []
    if term is None or term not in ALARM_KINDS:
        out.append(
            reader.warn(
                ctx,
                f"alarm {quote(named_term, 80)} has no canonical kind: sent as 'other'",
            )
        )
    alarm = ALARM_KINDS.get(term, "other") if term is not None else "other"
    if phase == "end":
        seen.discard(key)
        return out + emit("pump.alarm", None, alarm=alarm, cleared=True)
    if key in seen:
        return [_alarm_repeat(reader, ctx, phase, f"alarm {quote(key, 80)} of pump {pump}")]
    seen.add(key)
    return out + emit("pump.alarm", None, alarm=alarm)


def _alarm_identity(ctx: MessageContext) -> tuple[Obx, Term | None, str]:
    """The row naming the alarm, its term and its name (an MDC_EVT_ALARM row names it in
    its value)."""
    msg = ctx.msg
    ident = next((o for o in ctx.obxs if o.term not in _ALARM_FACETS), None)
    if ident is None:
        raise InputError("PCD-04 message has no alarm identification OBX row")
    term = ident.term
    named_term = obx_name(ident)
    if term is Term.EVT_ALARM and ident.value:
        code, refid = msg.comp([ident.value], 0, 1), msg.comp([ident.value], 0, 2)
        term = lookup(code, refid)
        named_term = refid or code
    return ident, term, named_term


def _alarm_phase(ctx: MessageContext) -> str:
    """The ACM event phase, one of those pumpguard knows (never guessed)."""
    msg = ctx.msg
    phase_row = next((o for o in ctx.obxs if o.term is Term.EVENT_PHASE), None)
    if phase_row is None:
        raise InputError("PCD-04 message has no MDC_ATTR_EVENT_PHASE row (start/update/end)")
    phase = (msg.comp([phase_row.value], 0, 1) or msg.comp([phase_row.value], 0, 2)).lower()
    if phase not in _PHASES:
        reason = (
            f"PCD-04 event phase {quote(phase, 80)} is not one pumpguard knows "
            f"({', '.join(sorted(_PHASES))})"
        )
        raise InputError(reason)
    return phase


def _alarm_key(msg: Hl7Message) -> str:
    """The alarm instance: OBR-29's placer part, else its filler part (B. Braun sends
    "^id&..."), else this message's own OBR-3 (the first message of an alarm)."""
    obr = msg.first("OBR")
    key = msg.comp(obr, 29, 1) or msg.comp(obr, 29, 2) or msg.comp(obr, 3, 1)
    if not key:
        raise InputError("PCD-04 alarm has neither OBR-29 parent nor OBR-3 id to follow it by")
    return key


def _alarm_repeat(reader: Hl7Reader, ctx: MessageContext, phase: str, instance: str) -> Reject:
    """A later phase of an episode already reported: said, no new event."""
    state = facet(ctx, Term.ALARM_STATE)
    inactivation = facet(ctx, Term.INACTIVATION_STATE)
    detail = ", ".join(p for p in (state, inactivation) if p)
    return reader.warn(
        ctx,
        f"{phase} of {instance}, already reported"
        + (f" ({quote(detail, 80)})" if detail else "")
        + ": the same alarm episode, no new event",
    )
