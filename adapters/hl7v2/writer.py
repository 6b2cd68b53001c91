"""Canonical events out as HL7 v2: PCD-10 for pump delivery, PCD-04 for alarms, ADT.

The reverse of the reader (:mod:`.reader`), for round-trip tests and drills: a course written
as canonical JSONL and the same course written as HL7 must give the engine the
same events. IPEC has no message for a bolus or a rate change, so those are
written the way pumps send them, as STOP/START pairs, and the reader has to
derive them back. Event types HL7 has no way to carry (registration, prime,
flush, keypad, pharmacy and nursing documentation) raise
:class:`UnsupportedEvent`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pumpguard.adapters.mdc import (
    ALARM_TERMS,
    STOP_REASONS,
    STOP_TEXT,
    SWITCHING_SOURCE,
    Term,
    term_code,
    term_refid,
)
from pumpguard.engine.errors import SinkError
from pumpguard.engine.events import (
    BagChanged as BagChangedEvent,
)
from pumpguard.engine.events import (
    Bolus,
    EncounterAdmitted,
    EncounterDischarged,
    EncounterTransferred,
    Event,
    InfusionCompleted,
    InfusionResumed,
    InfusionStarted,
    InfusionStopped,
    PumpAlarm,
    RateChanged,
)

__all__ = [
    "Hl7Writer",
    "UnsupportedEvent",
    "escape",
    "format_dtm",
    "frame",
    "render_pcd01",
]

_PCD10_PROFILE = "IHE_PCD_010^IHE PCD^1.3.6.1.4.1.19376.1.6.4.10^ISO"
_PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
_PCD04_PROFILE = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"

_UNITS = {
    "mL/h": "265266^MDC_DIM_MILLI_L_PER_HR^MDC^mL/h^mL/h^UCUM",
    "mL": "263762^MDC_DIM_MILLI_L^MDC^mL^mL^UCUM",
    "ug/d": "0^^MDC^ug/d^ug/d^UCUM",
    "ug/mL": "0^^MDC^ug/mL^ug/mL^UCUM",
    "kg": "263875^MDC_DIM_KILO_G^MDC^kg^kg^UCUM",
}

_STOP_ALARM: dict[str, Term] = {s.reason: s.alarm for s in STOP_REASONS if s.alarm is not None}
"""A stop for an alarm the reader tells apart (occlusion, air) names it in the message."""


class UnsupportedEvent(SinkError):
    """An event HL7 v2 (as pumpguard writes it) cannot carry."""


def escape(text: str) -> str:
    """HL7-escape a text value; line breaks cannot be carried in a field."""
    if "\r" in text or "\n" in text:
        msg = f"text {text!r} contains a line break, which an HL7 field cannot carry"
        raise UnsupportedEvent(msg)
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def format_dtm(ts: datetime) -> str:
    """An aware datetime as HL7 DTM with its own offset (up to 4 fractional digits)."""
    offset = ts.utcoffset()
    if offset is None:
        msg = "timestamp has no offset"
        raise UnsupportedEvent(msg)
    text = ts.strftime("%Y%m%d%H%M%S")
    if ts.microsecond:
        if ts.microsecond % 100:
            msg = f"{ts.isoformat()} is more precise than HL7's 1/10000 s"
            raise UnsupportedEvent(msg)
        text += "." + f"{ts.microsecond:06d}"[:4].rstrip("0")
    minutes, seconds = divmod(int(offset.total_seconds()), 60)
    if seconds:
        msg = f"offset of {ts.isoformat()} has seconds"
        raise UnsupportedEvent(msg)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}{mins:02d}"


def _num(value: float) -> str:
    # NM allows no exponent: write the shortest exact decimal instead of 1e-05.
    return format(Decimal(repr(float(value))), "f")


def frame(messages: Iterable[str], mode: str = "mllp") -> str:
    """Messages as one text: MLLP blocks, or CR segments with a newline between messages."""
    if mode == "mllp":
        return "".join(f"\x0b{m}\r\x1c\r" for m in messages)
    if mode == "cr":
        return "".join(f"{m}\r\n" for m in messages)
    msg = f"unknown framing {mode!r} (mllp or cr)"
    raise ValueError(msg)


def _msh(source: str | None, ts: datetime, mtype: str, control: str, profile: str) -> str:
    sender = escape(source) if source else ""
    return (
        f"MSH|^~\\&|{sender}|PUMPGUARD|PUMPGUARD|PUMPGUARD|{format_dtm(ts)}||{mtype}|"
        f"{escape(control)}|P|2.6|||AL|NE||UNICODE UTF-8|en^English^ISO639||{profile}"
    )


def _obx(
    n: int,
    vtype: str,
    term: Term,
    position: str,
    value: str = "",
    unit: str = "",
    device: str = "",
) -> str:
    ident = f"{term_code(term)}^{term_refid(term)}^MDC"
    status = "X" if not vtype else "R"
    tail = "|" * 7 + escape(device) if device else ""
    return f"OBX|{n}|{vtype}|{ident}|{position}|{value}|{unit}|||||{status}{tail}"


def render_pcd01(
    *,
    pump_id: str,
    patient_id: str | None,
    ts: datetime,
    control: str,
    delivering: bool,
    rate_ml_h: float | None = None,
    drug: str | None = None,
    volume_infused_ml: float | None = None,
    vtbi_remain_ml: float | None = None,
    source: str | None = None,
) -> str:
    """One PCD-01 periodic status message for a one-channel pump."""
    pid = (
        f"PID|||{escape(patient_id)}^^^PUMPGUARD^PI"
        if patient_id
        else "PID|||||||||||||||||||||||||||||||Y"
    )
    status = "pump-delivery-status-" + ("delivering" if delivering else "not-delivering")
    rows = [
        ("", Term.MDS, "1.0.0.0", "", "", pump_id),
        ("", Term.VMD, "1.1.0.0", "", "", ""),
        ("", Term.CHANNEL, "1.1.1.0", "", "", ""),
        ("CWE", Term.DELIVERY_STATUS, "1.1.1.1", f"^{status}", "", ""),
    ]
    if drug is not None:
        rows.append(("ST", Term.DRUG_NAME, "1.1.1.2", escape(drug), "", ""))
    if rate_ml_h is not None:
        rows.append(("NM", Term.RATE, "1.1.1.3", _num(rate_ml_h), _UNITS["mL/h"], ""))
    if volume_infused_ml is not None:
        rows.append(
            ("NM", Term.VOL_DELIVERED, "1.1.1.4", _num(volume_infused_ml), _UNITS["mL"], "")
        )
    if vtbi_remain_ml is not None:
        rows.append(("NM", Term.VTBI_REMAIN, "1.1.1.5", _num(vtbi_remain_ml), _UNITS["mL"], ""))
    segs = [
        _msh(source, ts, "ORU^R01^ORU_R01", control, _PCD01_PROFILE),
        pid,
        f"OBR|1|||69985^MDC_DEV_PUMP_INFUS_MDS^MDC|||{format_dtm(ts)}",
    ]
    segs += [_obx(i, *row) for i, row in enumerate(rows, start=1)]
    return "\r".join(segs)


_Metric = tuple[str, Term, str, str]
"""One channel metric row: value type, term, value, unit."""


def _coded_metrics(
    source: str | None,
    reason: str | None,
    alarm: Term | None,
    drug: str | None,
    bag: str | None,
) -> list[_Metric]:
    """The coded and text rows of a PCD-10 channel: source, stop reason, alarm, drug, bag."""
    metrics: list[_Metric] = []
    if source:
        metrics.append(("CWE", Term.ACTIVE_SOURCES, f"^{source}", ""))
    if reason:
        metrics.append(("CWE", Term.NOT_DELIVERING_REASON, f"^{reason}", ""))
    if alarm is not None:
        metrics.append(
            ("CWE", Term.ALARM_CONDITION, f"{term_code(alarm)}^{term_refid(alarm)}^MDC", "")
        )
    if drug is not None:
        metrics.append(("ST", Term.DRUG_NAME, escape(drug), ""))
    if bag is not None:
        metrics.append(("ST", Term.CONTAINER_ID, escape(bag), ""))
    return metrics


def _amount_metrics(
    rate: float | None,
    dose: float | None,
    vtbi: float | None,
    conc: float | None,
    delivered: float | None,
) -> list[_Metric]:
    """The numeric rows of a PCD-10 channel, each with its unit."""
    metrics: list[_Metric] = []
    for amount, term, unit in (
        (rate, Term.RATE, "mL/h"),
        (dose, Term.DOSE_RATE, "ug/d"),
        (vtbi, Term.VTBI, "mL"),
        (conc, Term.CONCENTRATION, "ug/mL"),
        (delivered, Term.VOL_DELIVERED, "mL"),
    ):
        if amount is not None:
            metrics.append(("NM", term, _num(amount), _UNITS[unit]))
    return metrics


@dataclass(slots=True)
class _WState:
    status: str = "unknown"  # running | stopped | ended | unknown
    bag: str | None = None


class Hl7Writer:
    """Stateful: a rate change needs to know the channel runs, a clear needs an open alarm."""

    def __init__(self, patient_classes: dict[str, str] | None = None) -> None:
        self.patient_classes = patient_classes or {"inpatient": "I", "outpatient": "O"}
        self._channels: dict[tuple[str, str], _WState] = {}
        self._alarms: dict[tuple[str, str, str], list[str]] = {}
        self._bag_change: BagChangedEvent | None = None

    def render_all(self, events: Iterable[Event]) -> list[str]:
        """Every event as messages, in order."""
        out: list[str] = []
        for event in events:
            out += self.render(event)
        if self._bag_change is not None:
            msg = "pump.bag_changed must be followed by the pump.infusion_started of the new bag"
            raise UnsupportedEvent(msg)
        return out

    def render(self, event: Event) -> list[str]:
        """The messages one event becomes (several for bolus and rate change, none yet for a
        bag change, which is written with the start that follows it)."""
        if self._bag_change is not None and not isinstance(event, InfusionStarted):
            msg = "pump.bag_changed must be followed by the pump.infusion_started of the new bag"
            raise UnsupportedEvent(msg)
        if isinstance(event, EncounterAdmitted | EncounterTransferred | EncounterDischarged):
            return [self._adt(event)]
        if isinstance(event, PumpAlarm):
            return [self._alarm(event)]
        if isinstance(event, BagChangedEvent):
            self._bag_change = event
            return []
        state = self._channels.setdefault((event.pump_id or "", event.channel), _WState())
        if isinstance(event, InfusionStarted):
            return self._started(event, state)
        if isinstance(event, InfusionStopped):
            state.status = "stopped"
            alarm = _STOP_ALARM.get(event.reason)
            return [
                self._pcd10(event, Term.DELIV_STOP, reason=STOP_TEXT[event.reason], alarm=alarm)
            ]
        if isinstance(event, InfusionResumed):
            if state.status != "stopped":
                msg = "pump.infusion_resumed is written only after pump.infusion_stopped"
                raise UnsupportedEvent(msg)
            state.status = "running"
            return [
                self._pcd10(
                    event, Term.DELIV_START, source="pump-source-info-primary", rate=event.rate_ml_h
                )
            ]
        if isinstance(event, RateChanged | Bolus):
            return self._switched(event, state)
        if isinstance(event, InfusionCompleted):
            state.status = "ended"
            return [
                self._pcd10(
                    event,
                    Term.DELIV_COMP,
                    bag=event.bag_id,
                    delivered=event.volume_infused_ml,
                )
            ]
        msg = f"{event.type} has no HL7 v2 rendering in pumpguard"
        raise UnsupportedEvent(msg)

    def _started(self, event: InfusionStarted, state: _WState) -> list[str]:
        """A start; a program already on the channel is cleared first, a bag change rides along."""
        eid = event.event_id
        out: list[str] = []
        if state.status in ("running", "stopped"):
            out.append(self._pcd10(event, Term.PROG_CLEARED, control=f"{eid}-clr"))
        change, self._bag_change = self._bag_change, None
        if change is not None:
            if event.event_id != f"{change.event_id}#2" or change.bag_id != event.bag_id:
                msg = "a bag change is written with its start: ids X and X#2, same bag"
                raise UnsupportedEvent(msg)
            eid = change.event_id
        out.append(
            self._pcd10(
                event,
                Term.DELIV_START,
                control=eid,
                source="pump-source-info-primary",
                drug=event.drug,
                rate=event.rate_ml_h,
                dose=event.dose_mcg_day,
                vtbi=event.vtbi_ml,
                conc=event.concentration_mcg_ml,
                bag=event.bag_id,
            )
        )
        state.status, state.bag = "running", event.bag_id or state.bag
        return out

    def _switched(self, event: RateChanged | Bolus, state: _WState) -> list[str]:
        """A rate change or bolus, written as pumps send it: STOP to switch source, then START."""
        eid = event.event_id
        if state.status != "running":
            msg = f"{event.type} is written only while the channel runs"
            raise UnsupportedEvent(msg)
        switch = SWITCHING_SOURCE
        out = [self._pcd10(event, Term.DELIV_STOP, control=f"{eid}-sw", reason=switch)]
        if isinstance(event, RateChanged):
            out.append(
                self._pcd10(
                    event,
                    Term.DELIV_START,
                    source="pump-source-info-primary",
                    rate=event.rate_ml_h,
                    dose=event.dose_mcg_day,
                )
            )
            return out
        out.append(
            self._pcd10(
                event,
                Term.DELIV_START,
                source="pump-source-info-clinician",
                vtbi=event.volume_ml,
            )
        )
        out.append(self._pcd10(event, Term.DELIV_STOP, control=f"{eid}-sw2", reason=switch))
        out.append(
            self._pcd10(
                event, Term.DELIV_START, control=f"{eid}-ret", source="pump-source-info-primary"
            )
        )
        return out

    # ------------------------------------------------------------------ messages

    def _pcd10(
        self,
        event: Event,
        kind: Term,
        *,
        control: str | None = None,
        source: str | None = None,
        reason: str | None = None,
        alarm: Term | None = None,
        drug: str | None = None,
        rate: float | None = None,
        dose: float | None = None,
        vtbi: float | None = None,
        conc: float | None = None,
        bag: str | None = None,
        delivered: float | None = None,
    ) -> str:
        vmd = ord(event.channel) - ord("A") + 1 if len(event.channel) == 1 else 0
        if not 1 <= vmd <= 26:
            msg = f"channel {event.channel!r} is not a letter A-Z (one VMD per channel)"
            raise UnsupportedEvent(msg)
        pump = event.pump_id or ""
        chan = f"1.{vmd}.1"
        rows: list[tuple[str, Term, str, str, str, str]] = [
            ("", Term.MDS, "1.0.0.0", "", "", pump),
            ("CWE", Term.EVT_COND, "1.0.0.1", f"{term_code(kind)}^{term_refid(kind)}^MDC", "", ""),
            ("ST", Term.EVT_SOURCE, "1.0.0.2", f"{chan}.0", "", ""),
            ("", Term.VMD, f"1.{vmd}.0.0", "", "", ""),
            ("", Term.CHANNEL, f"{chan}.0", "", "", ""),
        ]
        metrics = _coded_metrics(source, reason, alarm, drug, bag)
        metrics += _amount_metrics(rate, dose, vtbi, conc, delivered)
        for i, (vtype, term, value, unit) in enumerate(metrics, start=1):
            rows.append((vtype, term, f"{chan}.{i}", value, unit, ""))
        segs = [
            _msh(
                event.source, event.ts, "ORU^R42^ORU_R01", control or event.event_id, _PCD10_PROFILE
            ),
            f"PID|||{escape(event.patient_id)}^^^PUMPGUARD^PI",
            f"OBR|1|||196614^MDC_EVT_PUMP^MDC|||{format_dtm(event.ts)}",
        ]
        segs += [_obx(i, *row) for i, row in enumerate(rows, start=1)]
        return "\r".join(segs)

    def _alarm(self, event: PumpAlarm) -> str:
        if event.cleared is False:
            msg = "pump.alarm with cleared=false: write the raise without 'cleared'"
            raise UnsupportedEvent(msg)
        vmd = ord(event.channel) - ord("A") + 1 if len(event.channel) == 1 else 0
        if not 1 <= vmd <= 26:
            msg = f"channel {event.channel!r} is not a letter A-Z"
            raise UnsupportedEvent(msg)
        key = (event.pump_id, event.channel, event.alarm.value)
        open_ids = self._alarms.setdefault(key, [])
        parent = ""
        if event.cleared:
            parent = open_ids.pop(0) if open_ids else event.event_id
            phase, state = "end", "inactive"
        else:
            open_ids.append(event.event_id)
            phase, state = "start", "active"
        term = ALARM_TERMS[event.alarm.value]
        base = f"1.{vmd}.0.0"
        segs = [
            _msh(event.source, event.ts, "ORU^R40^ORU_R40", event.event_id, _PCD04_PROFILE),
            f"PID|||{escape(event.patient_id)}^^^PUMPGUARD^PI",
            f"OBR|1||{escape(event.event_id)}|196616^MDC_EVT_ALARM^MDC|||{format_dtm(event.ts)}"
            + ("|" * 22 + escape(parent) if parent else ""),
            _obx(1, "ST", term, f"{base}.1", "", "", event.pump_id),
            _obx(2, "ST", Term.EVENT_PHASE, f"{base}.3", phase),
            _obx(3, "ST", Term.ALARM_STATE, f"{base}.4", state),
            _obx(4, "ST", Term.ALARM_PRIORITY, f"{base}.6", "PM"),
            _obx(5, "ST", Term.ALERT_TYPE, f"{base}.7", "ST"),
        ]
        return "\r".join(segs)

    def _adt(self, event: EncounterAdmitted | EncounterTransferred | EncounterDischarged) -> str:
        trigger = {
            "encounter.admitted": "A01",
            "encounter.transferred": "A02",
            "encounter.discharged": "A03",
        }[event.type]
        klass, location = "", ""
        if isinstance(event, EncounterAdmitted | EncounterTransferred):
            klass = self.patient_classes.get(event.setting.value, "")
            if not klass:
                msg = f"setting {event.setting.value!r} has no PV1-2 class in this writer"
                raise UnsupportedEvent(msg)
            location = escape(event.location) if event.location else ""
        when = format_dtm(event.ts)
        pv1 = ["PV1", "1", klass, location] + [""] * 42
        if trigger == "A01":
            pv1[44] = when
        elif trigger == "A03":
            pv1[45] = when
        segs = [
            _msh(event.source, event.ts, f"ADT^{trigger}^ADT_{trigger}", event.event_id, ""),
            f"EVN|{trigger}|{when}",
            f"PID|1||{escape(event.patient_id)}^^^PUMPGUARD^MR",
            "|".join(pv1).rstrip("|"),
        ]
        return "\r".join(segs)
