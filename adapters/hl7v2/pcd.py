"""The PCD pump state machine: PCD-10 and PCD-01 messages to canonical events.

State is per feed on purpose (:class:`ChannelState`, kept by the reader): a STOP
and its START may be minutes apart, and the pair decides whether the stop was
a pause, a bolus or a rate change. Nothing enumerated is guessed: a delivery
status or active source the reader does not know is a reject; an unknown stop
reason is said in a warning. PCD-04 alarms are :mod:`.acm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pumpguard.adapters.base import Record, Reject
from pumpguard.adapters.hl7v2.context import (
    Emitter,
    MessageContext,
    Obx,
    Program,
    channel_letter,
    hierarchy,
    short,
)
from pumpguard.adapters.hl7v2.framing import quote
from pumpguard.adapters.mdc import (
    NOT_DELIVERING_REASONS,
    STOP_ALARMS,
    SWITCHING_SOURCE,
    Term,
    lookup,
)
from pumpguard.engine.errors import InputError

if TYPE_CHECKING:
    from pumpguard.adapters.hl7v2.reader import Hl7Reader

__all__ = ["ChannelState", "pcd01", "pcd10"]


@dataclass(slots=True)
class ChannelState:
    """What the reader remembers about one pump channel between messages."""

    status: str = "unknown"  # running | stopped | ended | unknown
    drug: str | None = None
    rate: float | None = None
    bag: str | None = None
    bolus_active: bool = False
    pending_stop: tuple[str, list[Record]] | None = None  # (position of the STOP, its records)
    delivering01: bool | None = None


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


def pcd10(reader: Hl7Reader, ctx: MessageContext) -> list[Record]:
    """A PCD-10 event report: one channel's start, stop, completion, clear or association."""
    evt = next((o for o in ctx.obxs if o.term is Term.EVT_COND), None)
    if evt is None:
        raise InputError("PCD-10 message has no MDC_ATTR_EVT_COND row; no event to read")
    ev_code = ctx.msg.comp([evt.value], 0, 1)
    ev_refid = ctx.msg.comp([evt.value], 0, 2)
    kind = lookup(ev_code, ev_refid)
    ts = ctx.time(evt)
    pump = ctx.pump_id()
    vmd, chan_prefix = _event_channel(ctx, evt)
    channel = channel_letter(vmd)
    state = reader.channel(pump, channel)
    named, why = ctx.named_patient()

    if kind is Term.PATIENT_CHANGE:
        reader.binder.associate(pump, named, ts)
        who = f"patient {short(named)}" if named else f"no patient ({why})"
        return [reader.warn(ctx, f"pump {pump} associated with {who} from {ts.isoformat()}")]
    if kind not in (
        Term.DELIV_START,
        Term.DELIV_STOP,
        Term.DELIV_COMP,
        Term.PROG_CLEARED,
        Term.VOL_COUNTERS_CLEARED,
    ):
        name = quote(ev_refid or ev_code or "?", 80)
        return [reader.warn(ctx, f"PCD-10 event {name} is not mapped; ignored")]

    if kind is not Term.DELIV_START:
        reader.release(state)
    prog = ctx.program(f"1.{vmd}.", chan_prefix)
    base: dict[str, Any] = {
        "ts": ts,
        "pump_id": pump,
        "channel": channel,
        **ctx.source_field(),
    }
    emit = Emitter(ctx, base, pump, ts, named, why)

    if kind is Term.DELIV_START:
        return start(reader, ctx, state, prog, emit)
    return _stop(reader, ctx, state, prog, emit, kind)


def _event_channel(ctx: MessageContext, evt: Obx) -> tuple[int, str | None]:
    """(VMD, channel prefix) of a PCD-10 event: its EVT_SOURCE row, else its own OBX-4.

    An event at device level names its channel only when the pump has one.
    """
    source = next((o for o in ctx.obxs if o.term is Term.EVT_SOURCE), None)
    where = source.value.strip() if source is not None else evt.position
    vmd, chan_prefix = hierarchy(where)
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
    return vmd, chan_prefix


def _stop(
    reader: Hl7Reader,
    ctx: MessageContext,
    state: ChannelState,
    prog: Program,
    emit: Emitter,
    kind: Term,
) -> list[Record]:
    """A clear, a completion or a STOP; a source-switch STOP waits for the next START."""
    pump, channel = emit.pump, emit.base["channel"]
    if kind in (Term.PROG_CLEARED, Term.VOL_COUNTERS_CLEARED):
        state.status = "ended"
        what = "program" if kind is Term.PROG_CLEARED else "volume counters"
        return [
            reader.warn(
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
    reason, notes = _stop_reason(prog)
    if prog.not_delivering_reason == SWITCHING_SOURCE and state.status == "running":
        # A source switch: bolus, piggyback or new rate follows; decided at the START.
        state.pending_stop = (
            ctx.position,
            emit("pump.infusion_stopped", prog, reason="other"),
        )
        return [
            reader.warn(
                ctx,
                f"delivery stop on pump {pump} channel {channel} to switch source: held "
                "until the channel's next START tells a bolus or rate change from a stop",
            )
        ]
    state.status = "stopped"
    state.bolus_active = False
    return [reader.warn(ctx, n) for n in notes] + emit("pump.infusion_stopped", prog, reason=reason)


def start(
    reader: Hl7Reader, ctx: MessageContext, state: ChannelState, prog: Program, emit: Emitter
) -> list[Record]:
    """A START: a bolus, the end of a switch (rate change), a resume or a new program."""
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
            out = started(state, prog, emit, new_bag)
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
                reader.warn(
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
        out = started(state, prog, emit, new_bag)
    state.status = "running"
    return out


def started(state: ChannelState, prog: Program, emit: Emitter, new_bag: bool) -> list[Record]:
    """A new program on the channel (with the bag change before it, if the bag is new)."""
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


def pcd01(reader: Hl7Reader, ctx: MessageContext) -> list[Record]:
    """A PCD-01 periodic status: each channel's change since its last status, if any."""
    pump = ctx.pump_id()
    vmds = ctx.vmds()
    if not vmds:
        raise InputError("PCD-01 message has no pump channel (VMD) rows")
    out: list[Record] = []
    for vmd in vmds:
        out += _pcd01_channel(reader, ctx, pump, vmd, len(out))
    return out


def _pcd01_channel(
    reader: Hl7Reader, ctx: MessageContext, pump: str, vmd: int, index: int
) -> list[Record]:
    """One channel's status: a known, settled delivery status or a record saying why not."""
    channel = channel_letter(vmd)
    where = f"pump {pump} channel {channel}"
    prog = ctx.program(f"1.{vmd}.", None)
    status_row = ctx.status_row(f"1.{vmd}.")
    text = prog.delivery_status
    if not text:
        return [reader.warn(ctx, f"status of {where} names no delivery status: no event")]
    if text not in _DELIVERY_STATUS:
        raw = status_row.value if status_row is not None else text
        known = ", ".join(_DELIVERY_STATUS)
        return [
            Reject(
                reader.label,
                ctx.position,
                f"delivery status {quote(raw, 80)} of {where} is not one pumpguard "
                f"knows ({known}); no start or stop is assumed",
            )
        ]
    delivering = _DELIVERY_STATUS[text]
    if delivering is None:
        return [reader.warn(ctx, f"{where} is transitioning: no event until it settles")]
    ts = ctx.time(status_row)
    state = reader.channel(pump, channel)
    named, why = ctx.named_patient()
    base = {"ts": ts, "pump_id": pump, "channel": channel, **ctx.source_field()}
    emit = Emitter(ctx, base, pump, ts, named, why, index=index)
    prev = state.delivering01
    state.delivering01 = delivering
    if prev is None:
        return [_pcd01_first(reader, ctx, state, prog, where, delivering)]
    return _pcd01_change(reader, ctx, state, prog, emit, where, prev, delivering)


def _pcd01_first(
    reader: Hl7Reader,
    ctx: MessageContext,
    state: ChannelState,
    prog: Program,
    where: str,
    delivering: bool,
) -> Reject:
    """A channel's first status: no event, since when it started or stopped is unknown."""
    if delivering:
        state.status = "running"
        state.drug, state.rate, state.bag = prog.drug, prog.rate_ml_h, prog.bag_id
        return reader.warn(
            ctx,
            f"first status of {where} says delivering; its start time is "
            "unknown, so no start event is made",
        )
    why_not = prog.not_delivering_reason or "no reason given"
    return reader.warn(
        ctx,
        f"first status of {where} says not delivering ({quote(why_not, 80)}); "
        "nothing was running to stop, so no event is made",
    )


def _pcd01_change(
    reader: Hl7Reader,
    ctx: MessageContext,
    state: ChannelState,
    prog: Program,
    emit: Emitter,
    where: str,
    prev: bool,
    delivering: bool,
) -> list[Record]:
    """The event a status change means: start or resume, stop or completion, new rate."""
    out: list[Record] = []
    if delivering and not prev:
        new = (prog.drug is not None and prog.drug != state.drug) or (
            prog.bag_id is not None and prog.bag_id != state.bag
        )
        if state.status == "stopped" and not new:
            out += emit("pump.infusion_resumed", prog, rate_ml_h=prog.rate_ml_h)
            state.rate = prog.rate_ml_h or state.rate
        else:
            out += started(state, prog, emit, new_bag=False)
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
            out += [reader.warn(ctx, n) for n in notes]
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
        out.append(reader.warn(ctx, f"status of {where} unchanged ({now}): no event"))
    return out


def _stop_reason(prog: Program) -> tuple[str, list[str]]:
    """The canonical stop reason and what had to be said to get it (never a silent 'other')."""
    text = prog.not_delivering_reason
    if not text:
        return "other", ["no not-delivering reason given: stop reason 'other'"]
    reason = NOT_DELIVERING_REASONS.get(text)
    if reason is None:
        known = ", ".join(NOT_DELIVERING_REASONS)
        note = f"not-delivering reason {quote(text, 80)} is not one pumpguard knows ({known}): "
        return "other", [note + "stop reason 'other'"]
    if reason == "alarm" and prog.alarm is not None and prog.alarm in STOP_ALARMS:
        return STOP_ALARMS[prog.alarm], []
    return reason, []
