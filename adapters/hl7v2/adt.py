"""ADT: admit, transfer and discharge (and their cancels) to encounter events.

The event time is the trigger's own field (PV1-44 admit, PV1-45 discharge), else
EVN-6, EVN-2, MSH-7; the setting comes from PV1-2 through the feed's
``pv1_patient_class`` table, never guessed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pumpguard.adapters.base import Record, Reject
from pumpguard.adapters.hl7v2.context import Emitter, MessageContext
from pumpguard.adapters.hl7v2.framing import quote
from pumpguard.adapters.hl7v2.message import Hl7Message, parse_dtm
from pumpguard.engine.errors import InputError

if TYPE_CHECKING:
    from pumpguard.adapters.hl7v2.reader import Hl7Reader

__all__ = ["adt"]


_CANCELS = {
    "A11": "cancel admit: emitted as encounter.discharged at the cancel time",
    "A12": "cancel transfer: emitted as encounter.transferred at the cancel time",
    "A13": "cancel discharge: emitted as encounter.admitted at the cancel time",
}


def adt(reader: Hl7Reader, ctx: MessageContext, trigger: str) -> list[Record]:
    """An ADT message as the encounter event its trigger means (cancels said in a warning)."""
    msg = ctx.msg
    out = _evn_mismatch(reader, ctx, trigger)
    patient = ctx.named_patient()[0]
    if patient is None:
        raise InputError("ADT message names no patient (PID-3 empty or PID-31=Y)")
    ts = _event_time(reader, msg, trigger)
    base = {"ts": ts, "patient_id": patient, **ctx.source_field()}
    location = _location(msg, msg.first("PV1"), 3)
    emit = Emitter(ctx, base, None, ts, patient, "")
    if trigger in ("A01", "A04"):
        out += emit("encounter.admitted", None, setting=_setting(reader, msg), location=location)
        reader.adt_last[patient] = (_setting(reader, msg), location)
    elif trigger == "A02":
        out += emit("encounter.transferred", None, setting=_setting(reader, msg), location=location)
        reader.adt_last[patient] = (_setting(reader, msg), location)
    elif trigger == "A03":
        out += emit("encounter.discharged", None)
    elif trigger == "A08":
        out += _update(reader, ctx, emit, patient, location)
    else:
        out += _cancel(reader, ctx, emit, trigger, location)
    return out


def _evn_mismatch(reader: Hl7Reader, ctx: MessageContext, trigger: str) -> list[Record]:
    """A warning when EVN-1 names another trigger than MSH-9 (MSH-9 is trusted)."""
    evn_type = ctx.msg.comp(ctx.msg.first("EVN"), 1, 1)
    if not evn_type or evn_type == trigger:
        return []
    return [
        Reject(
            reader.label,
            ctx.position,
            f"EVN-1 says {quote(evn_type, 40)} but MSH-9 says {quote(trigger, 40)}; MSH-9 trusted",
            level="warning",
        )
    ]


def _setting(reader: Hl7Reader, msg: Hl7Message) -> str:
    """The care setting PV1-2 maps to through the feed's table (never guessed)."""
    klass = msg.comp(msg.first("PV1"), 2, 1)
    mapped = reader.config.pv1_patient_class.get(klass)
    if mapped is None:
        reason = (
            f"PV1-2 patient class {quote(klass, 40) if klass else '(empty)'} maps to no "
            "setting; add it to pv1_patient_class in the adapter config (never guessed)"
        )
        raise InputError(reason)
    return mapped.value


def _update(
    reader: Hl7Reader, ctx: MessageContext, emit: Emitter, patient: str, location: str | None
) -> list[Record]:
    """An A08 update: a transfer when the setting or location changed, else said."""
    out: list[Record] = []
    now = (_setting(reader, ctx.msg), location)
    if reader.adt_last.get(patient, now) == now:
        out.append(
            Reject(
                reader.label,
                ctx.position,
                "A08 update changes neither setting nor location; no encounter event",
                level="warning",
            )
        )
    else:
        out += emit("encounter.transferred", None, setting=now[0], location=location)
    reader.adt_last[patient] = now
    return out


def _cancel(
    reader: Hl7Reader, ctx: MessageContext, emit: Emitter, trigger: str, location: str | None
) -> list[Record]:
    """A cancel (A11-A13) as the opposite event, with a warning: events v1 cannot retract."""
    out: list[Record] = [
        Reject(
            reader.label,
            ctx.position,
            f"{_CANCELS[trigger]}; events v1 cannot retract the earlier event",
            level="warning",
        )
    ]
    if trigger == "A11":
        out += emit("encounter.discharged", None)
    elif trigger == "A12":
        out += emit(
            "encounter.transferred", None, setting=_setting(reader, ctx.msg), location=location
        )
    else:
        out += emit(
            "encounter.admitted", None, setting=_setting(reader, ctx.msg), location=location
        )
    return out


def _location(msg: Hl7Message, seg: list[str] | None, n: int) -> str | None:
    parts = [msg.comp(seg, n, c) for c in (1, 2, 3)]
    text = "/".join(p for p in parts if p)
    return text or None


def _event_time(reader: Hl7Reader, msg: Hl7Message, trigger: str) -> datetime:
    """The trigger's own time field (PV1-44 admit, PV1-45 discharge), else EVN-6, EVN-2, MSH-7."""
    evn, pv1 = msg.first("EVN"), msg.first("PV1")
    if trigger in ("A01", "A04", "A13"):
        ts_fields = [("PV1-44", pv1, 44)]
    elif trigger == "A03":
        ts_fields = [("PV1-45", pv1, 45)]
    elif trigger in ("A02", "A08", "A11", "A12"):
        ts_fields = []
    else:
        reason = f"ADT^{quote(trigger, 40)} is not an encounter event pumpguard reads"
        raise InputError(reason)
    ts_fields += [("EVN-6", evn, 6), ("EVN-2", evn, 2), ("MSH-7", msg.segments[0], 7)]
    for name, seg, n in ts_fields:
        raw = msg.comp(seg, n, 1)
        if raw:
            return parse_dtm(raw, reader.zone, name)
    raise InputError("ADT message has no event time (PV1-44/45, EVN-6, EVN-2, MSH-7)")
