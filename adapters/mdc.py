"""ISO/IEEE 11073 MDC terms the pump adapters read, matched on REFID and on code.

Vendors disagree: B. Braun spells ``MDC_PUMP_*`` on one pump and
``MDC_DEV_PUMP_*`` on another, and IHE's own examples send code ``0`` for terms
that had no number yet. So a term matches on its REFID (with the two pump
spellings treated as one) or on its numeric code, and code 0 never matches.
Codes marked unverified in the research note are left out on purpose.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "ALARM_KINDS",
    "ALARM_TERMS",
    "NOT_DELIVERING_REASONS",
    "STOP_ALARMS",
    "STOP_REASONS",
    "STOP_TEXT",
    "SWITCHING_SOURCE",
    "StopReasonTerm",
    "Term",
    "lookup",
    "term_code",
    "term_refid",
]


class Term(StrEnum):
    """The concepts the adapters understand (values are internal names)."""

    MDS = "mds"
    VMD = "vmd"
    CHANNEL = "channel"
    EVT_COND = "evt_cond"
    EVT_SOURCE = "evt_source"
    DELIV_START = "deliv_start"
    DELIV_STOP = "deliv_stop"
    DELIV_COMP = "deliv_comp"
    PROG_CLEARED = "prog_cleared"
    VOL_COUNTERS_CLEARED = "vol_counters_cleared"
    PATIENT_CHANGE = "patient_change"
    COMM_STATUS_CHANGE = "comm_status_change"
    RATE = "rate"
    RATE_CURRENT = "rate_current"
    DOSE_RATE = "dose_rate"
    VTBI = "vtbi"
    VTBI_REMAIN = "vtbi_remain"
    VOL_DELIVERED = "vol_delivered"
    DRUG_NAME = "drug_name"
    CONCENTRATION = "concentration"
    WEIGHT = "weight"
    INFUSING_STATUS = "infusing_status"
    DELIVERY_STATUS = "delivery_status"
    DELIVERY_MODE = "delivery_mode"
    NOT_DELIVERING_REASON = "not_delivering_reason"
    ACTIVE_SOURCES = "active_sources"
    CONTAINER_ID = "container_id"
    ALARM_CONDITION = "alarm_condition"
    EVT_ALARM = "evt_alarm"
    ALERT_SOURCE = "alert_source"
    EVENT_PHASE = "event_phase"
    ALARM_STATE = "alarm_state"
    INACTIVATION_STATE = "inactivation_state"
    ALARM_PRIORITY = "alarm_priority"
    ALERT_TYPE = "alert_type"
    ALERT_TEXT = "alert_text"
    OCCLUSION = "occlusion"
    AIR_IN_LINE = "air_in_line"
    DOOR_OPEN = "door_open"
    BATTERY_LOW = "battery_low"
    END_OF_INFUSION = "end_of_infusion"
    MALFUNCTION = "malfunction"


# term → (REFIDs, codes). The first REFID and code are the ones the writers send.
_TABLE: dict[Term, tuple[tuple[str, ...], tuple[int, ...]]] = {
    Term.MDS: (
        (
            "MDC_DEV_PUMP_INFUS_LVP_MDS",
            "MDC_DEV_PUMP_INFUS_MDS",
            "MDC_DEV_PUMP_INFUS_SYRINGE_MDS",
        ),
        (70049, 69985, 70053),
    ),
    Term.VMD: (
        (
            "MDC_DEV_PUMP_INFUS_LVP_VMD",
            "MDC_DEV_PUMP_INFUS_VMD",
            "MDC_DEV_PUMP_INFUS_SYRINGE_VMD",
        ),
        (70050, 69986, 70054),
    ),
    Term.CHANNEL: (
        (
            "MDC_DEV_PUMP_INFUSATE_SOURCE_PRIMARY",
            "MDC_DEV_PUMP_DELIVERY_INFO",
            "MDC_DEV_PUMP_INFUS_CHAN_SOURCE",
            "MDC_DEV_PUMP_INFUS_CHAN_DELIVERY",
        ),
        (70071, 70067, 126977, 126978),
    ),
    Term.EVT_COND: (("MDC_ATTR_EVT_COND",), (68487,)),
    Term.EVT_SOURCE: (("MDC_ATTR_EVT_SOURCE",), (68488,)),
    Term.DELIV_START: (("MDC_EVT_PUMP_DELIV_START",), (197288,)),
    # 197290 is only inferred in the research note: matched on REFID alone.
    Term.DELIV_STOP: (("MDC_EVT_PUMP_DELIV_STOP",), ()),
    Term.DELIV_COMP: (("MDC_EVT_PUMP_DELIV_COMP",), (197292,)),
    Term.PROG_CLEARED: (("MDC_EVT_PUMP_PROG_CLEARED", "MDC_EVT_PUMP_AUTO_PROG_CLEARED"), ()),
    Term.VOL_COUNTERS_CLEARED: (("MDC_EVT_PUMP_VOL_COUNTERS_CLEARED",), ()),
    Term.PATIENT_CHANGE: (("MDC_EVT_PUMP_PATIENT_CHANGE", "MDC_EVT_PUMP_PATIENT_ID_CHANGE"), ()),
    Term.COMM_STATUS_CHANGE: (("MDC_EVT_PUMP_COMM_STATUS_CHANGE",), ()),
    Term.RATE: (("MDC_FLOW_FLUID_PUMP",), (157784,)),
    Term.RATE_CURRENT: (("MDC_FLOW_FLUID_PUMP_CURRENT",), (158014,)),
    Term.DOSE_RATE: (("MDC_RATE_DOSE", "MDC_FLOW_DRUG_DELIV"), (157924, 157804)),
    Term.VTBI: (("MDC_VOL_FLUID_TBI",), (157884,)),
    Term.VTBI_REMAIN: (("MDC_VOL_FLUID_TBI_REMAIN",), (157872,)),
    Term.VOL_DELIVERED: (
        (
            "MDC_VOL_FLUID_DELIV_TOTAL",
            "MDC_VOL_FLUID_DELIV",
            "MDC_VOL_INFUS_ACTUAL_TOTAL",
        ),
        (157993, 157864, 157948),
    ),
    Term.DRUG_NAME: (("MDC_DRUG_NAME_LABEL", "MDC_DRUG_NAME_TYPE"), (184514, 184330)),
    Term.CONCENTRATION: (("MDC_CONC_DRUG",), (157760,)),
    Term.WEIGHT: (("MDC_ATTR_PT_WEIGHT",), (68063,)),
    Term.INFUSING_STATUS: (("MDC_PUMP_INFUSING_STATUS", "MDC_PUMP_STAT"), (184519, 184508)),
    Term.DELIVERY_STATUS: (("MDC_DEV_PUMP_CURRENT_DELIVERY_STATUS",), (158005,)),
    Term.DELIVERY_MODE: (("MDC_DEV_PUMP_PROGRAM_DELIVERY_MODE", "MDC_PUMP_MODE"), (158008, 184504)),
    Term.NOT_DELIVERING_REASON: (("MDC_DEV_PUMP_NOT_DELIVERING_REASON",), (158006,)),
    Term.ACTIVE_SOURCES: (("MDC_DEV_PUMP_ACTIVE_SOURCES",), (158016,)),
    # No standard term names the container; pumpguard's writer sends this private one.
    Term.CONTAINER_ID: (("MDCX_PUMPGUARD_CONTAINER_ID",), ()),
    Term.ALARM_CONDITION: (("MDC_ATTR_AL_COND",), ()),
    Term.EVT_ALARM: (("MDC_EVT_ALARM",), (196616,)),
    Term.ALERT_SOURCE: (("MDC_ATTR_ALERT_SOURCE",), (68480,)),
    Term.EVENT_PHASE: (("MDC_ATTR_EVENT_PHASE",), (68481,)),
    Term.ALARM_STATE: (("MDC_ATTR_ALARM_STATE",), (68482,)),
    Term.INACTIVATION_STATE: (("MDC_ATTR_ALARM_INACTIVATION_STATE",), (68483,)),
    Term.ALARM_PRIORITY: (("MDC_ATTR_ALARM_PRIORITY",), (68484,)),
    Term.ALERT_TYPE: (("MDC_ATTR_ALERT_TYPE",), (68485,)),
    Term.ALERT_TEXT: (("MDC_ATTR_ALERT_TEXT",), (68546,)),
    Term.OCCLUSION: (("MDC_EVT_FLUID_LINE_OCCL", "MDC_EVT_OCCL"), (196940, 196688)),
    Term.AIR_IN_LINE: (("MDC_EVT_FLUID_LINE_AIR",), ()),
    Term.DOOR_OPEN: (
        (
            "MDC_EVT_STAT_DOOR_OPEN",
            "MDC_EVT_DOOR_OR_HANDLE_POSN_PROB",
            "MDC_EVT_DOOR_POSN_ERR",
            "MDC_EVT_SYRINGE_BARREL_CAPTURE_FAULT",
        ),
        (202828, 196842, 197218),
    ),
    Term.BATTERY_LOW: (("MDC_EVT_BATT_LO",), (196802,)),
    Term.END_OF_INFUSION: (("MDC_EVT_VOL_INFUS_COMP",), ()),
    Term.MALFUNCTION: (("MDC_EVT_PUMP_FLOW_FREE",), (197206,)),
}


def _norm(refid: str) -> str:
    # The one spelling difference seen between vendors: MDC_DEV_PUMP_x == MDC_PUMP_x.
    refid = refid.strip().upper()
    if refid.startswith("MDC_DEV_PUMP_"):
        return "MDC_PUMP_" + refid[len("MDC_DEV_PUMP_") :]
    return refid


_BY_REFID: dict[str, Term] = {}
_BY_CODE: dict[str, Term] = {}
for _term, (_refids, _codes) in _TABLE.items():
    for _r in _refids:
        _BY_REFID[_norm(_r)] = _term
    for _c in _codes:
        _BY_CODE[str(_c)] = _term


def lookup(code: str, refid: str) -> Term | None:
    """The term a coded element denotes: REFID first, then a non-zero numeric code."""
    if refid:
        hit = _BY_REFID.get(_norm(refid))
        if hit is not None:
            return hit
    if code and code != "0":
        return _BY_CODE.get(code.strip())
    return None


def term_refid(term: Term) -> str:
    """The REFID the writers send for a term."""
    return _TABLE[term][0][0]


def term_code(term: Term) -> str:
    """The numeric code the writers send ("0" when the code is not verified)."""
    codes = _TABLE[term][1]
    return str(codes[0]) if codes else "0"


# ------------------------------------------------------------------ alarms and stop reasons
# One table each, read by the HL7 reader and written by the HL7 writer, so a kind the
# writer sends is always one the reader maps back.

ALARM_TERMS: dict[str, Term] = {
    "occlusion": Term.OCCLUSION,
    "air_in_line": Term.AIR_IN_LINE,
    "door_open": Term.DOOR_OPEN,
    "battery_low": Term.BATTERY_LOW,
    "end_of_infusion": Term.END_OF_INFUSION,
    "malfunction": Term.MALFUNCTION,
    "other": Term.EVT_ALARM,
}
"""Canonical alarm kind → the term that identifies it (a bare MDC_EVT_ALARM is 'other')."""

ALARM_KINDS: dict[Term, str] = {term: kind for kind, term in ALARM_TERMS.items()}
"""The reverse: an alarm term → its canonical kind; a term not listed is sent as 'other'."""


class StopReasonTerm(NamedTuple):
    """A canonical stop reason as IHE PCD says it: Not-Delivering Reason, and alarm if any."""

    reason: str
    text: str
    alarm: Term | None = None


SWITCHING_SOURCE = "pump-stopped-switching-source"
"""The Not-Delivering Reason of a stop that a bolus, piggyback or new rate follows."""

STOP_REASONS: tuple[StopReasonTerm, ...] = (
    StopReasonTerm("user", "pump-stopped-by-clinician"),
    StopReasonTerm("alarm", "pump-stopped-alarming"),
    StopReasonTerm("occlusion", "pump-stopped-alarming", Term.OCCLUSION),
    StopReasonTerm("air_in_line", "pump-stopped-alarming", Term.AIR_IN_LINE),
    StopReasonTerm("power", "pump-stopped-powered-off"),
    StopReasonTerm("other", "pump-stopped-other"),
)
"""Canonical stop reason ↔ IHE PCD Not-Delivering Reason (an alarm stop names its alarm)."""

STOP_TEXT: dict[str, str] = {s.reason: s.text for s in STOP_REASONS}
"""Canonical stop reason → the Not-Delivering Reason the writer sends."""

STOP_ALARMS: dict[Term, str] = {s.alarm: s.reason for s in STOP_REASONS if s.alarm is not None}
"""The alarm named with an alarming stop → the more precise canonical reason."""

NOT_DELIVERING_REASONS: dict[str, str] = {
    **{s.text: s.reason for s in STOP_REASONS if s.alarm is None},
    SWITCHING_SOURCE: "other",
}
"""IHE PCD Not-Delivering Reason → canonical stop reason; anything else is said, not mapped."""
