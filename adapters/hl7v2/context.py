"""What the mappings read from one message: OBX rows, a channel's program, ids, times.

:class:`MessageContext` caches the OBX rows and answers the lookups every
mapping (PCD and ADT) needs; :class:`Emitter` turns mapped values into
canonical events (ids, patient binding, validation, unit warnings).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pumpguard.adapters.base import Record, Reject
from pumpguard.adapters.common import make_event
from pumpguard.adapters.hl7v2.framing import quote
from pumpguard.adapters.hl7v2.message import Hl7Message, parse_dtm
from pumpguard.adapters.mdc import Term, lookup
from pumpguard.adapters.units import UnitError, convert, normalise_unit
from pumpguard.engine.errors import BindingError, InputError
from pumpguard.engine.gate import describe_validation_error
from pydantic import ValidationError

if TYPE_CHECKING:
    from pumpguard.adapters.hl7v2.reader import Hl7Reader

__all__ = [
    "MAX_CHANNELS",
    "Emitter",
    "MessageContext",
    "Obx",
    "Program",
    "channel_letter",
    "facet",
    "hierarchy",
    "obx_name",
    "read_obx",
    "row_name",
    "short",
]

# ASCII digits only: Python's \d also takes other scripts' digits, which HL7 never sends.
_NM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$", re.ASCII)
MAX_CHANNELS = 26
_MAX_ID = 199  # HL7 v2.6 EI.1 (entity identifier) length


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


def read_obx(msg: Hl7Message, seg: list[str]) -> Obx:
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


def obx_name(o: Obx) -> str:
    return short(o.refid or o.code or "?")


def short(text: str, limit: int = 60) -> str:
    """An identifier for a reason, cut so a damaged field cannot flood it."""
    return text if len(text) <= limit else text[:limit] + "..."


def row_name(o: Obx) -> str:
    return f"OBX {short(o.setid, 12)} ({obx_name(o)})"


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


def channel_letter(vmd: int) -> str:
    """VMD 1 is channel "A", 2 is "B"...: one VMD per delivery channel (TF-2 B.8).

    Raises InputError past Z: an OBX-4 of ``1.2000000.0.0`` is a damaged row, not a pump
    with two million channels.
    """
    if not 1 <= vmd <= MAX_CHANNELS:
        shown = str(vmd) if vmd < 10**9 else "of 10 or more digits"
        msg = f"OBX-4 names VMD {shown}; pumpguard reads channels 1 to {MAX_CHANNELS} (A-Z)"
        raise InputError(msg)
    return chr(ord("A") + vmd - 1)


def facet(ctx: MessageContext, term: Term) -> str:
    row = next((o for o in ctx.obxs if o.term is term), None)
    if row is None:
        return ""
    return ctx.msg.comp([row.value], 0, 1) or ctx.msg.comp([row.value], 0, 2)


def _number_part(text: str) -> int | None:
    # ASCII digits only (str.isdigit() takes "²"), and bounded: int() refuses 4,300+ digits.
    if not text or len(text) > 9 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def hierarchy(position: str) -> tuple[int, str | None]:
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


class MessageContext:
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
            self._obxs = [read_obx(self.msg, s) for s in self.msg.segments if s[0] == "OBX"]
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
                reason = (
                    f"OBX-18 component {c} {quote(value, 80)} is longer than the {_MAX_ID} "
                    "characters HL7 allows an entity identifier; not a pump id"
                )
                raise InputError(reason)
            if value:
                return value
        listed = ", ".join(str(c) for c in components)
        reason = (
            f"no device identifier: OBX {quote(row.setid, 20)} OBX-18 {quote(row.seg[18], 80)} "
            f"has nothing in component(s) {listed} (pump_id_components)"
        )
        raise InputError(reason)

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
            vmd, _ = hierarchy(o.position)
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
            msg = f"{row_name(row)} value {quote(text)} is not a number (NM)"
            raise InputError(msg)
        value = float(text)
        if not math.isfinite(value):
            msg = f"{row_name(row)} value {quote(text, 40)} is too large"
            raise InputError(msg)
        if value < 0:
            msg = f"{row_name(row)} value {quote(text, 40)} is negative"
            raise InputError(msg)
        if row.unit is None:
            shown = quote(row.unit_raw, 80) if row.unit_raw else "(none)"
            prog.unit_problems[name] = f"{row_name(row)} unit {shown} is unknown"
            return None
        try:
            return convert(value, row.unit, target, weight)
        except UnitError as exc:
            prog.unit_problems[name] = f"{row_name(row)}: {exc}"
            return None


class Emitter:
    """Builds canonical events for one message: ids, binding, validation, warnings."""

    __slots__ = ("base", "count", "ctx", "named", "pump", "ts", "why")

    def __init__(
        self,
        ctx: MessageContext,
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
