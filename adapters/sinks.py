"""Finding sinks besides JSONL: a structured log, an HL7 alert, a FHIR DetectedIssue.

A hospital's alarm manager listens for IHE ACM ``ORU^R40`` messages and an EHR
takes FHIR; a finding that only lives in a JSONL file helps nobody at the
bedside. Each sink renders one finding at a time and flushes it, so a crash
never holds back a finding that was already raised.

Live, a finding can be withdrawn (spec "Withdrawals"); :func:`oru_r40_withdrawal`
and :func:`detected_issue_withdrawal` render the withdrawal so the receiver can
match it to what the finding created and end or replace it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import structlog
from pumpguard.adapters.base import FindingSink
from pumpguard.adapters.hl7v2.writer import UnsupportedEvent, escape, format_dtm, frame
from pumpguard.adapters.jsonl import JsonlFindingSink
from pumpguard.engine.errors import SinkError
from pumpguard.engine.findings import Finding, Withdrawal, rfc3339

__all__ = [
    "AtomicTextFile",
    "FhirDetectedIssueSink",
    "Hl7AlertSink",
    "StructlogFindingSink",
    "detected_issue",
    "detected_issue_withdrawal",
    "make_sink",
    "oru_r40",
    "oru_r40_withdrawal",
]

_LOG_LEVEL = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
_ACM_PRIORITY = {"critical": "PH", "high": "PH", "medium": "PM", "low": "PL", "info": "PL"}
_FHIR_SEVERITY = {
    "critical": "high",
    "high": "high",
    "medium": "moderate",
    "low": "low",
    "info": "low",
}


class StructlogFindingSink(FindingSink):
    """One structured log line per finding, at a level that follows its severity."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._log = structlog.wrap_logger(
            structlog.PrintLogger(stream),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.JSONRenderer(),
            ],
        )

    def write(self, finding: Finding) -> None:
        data = finding.model_dump(mode="json")
        level = _LOG_LEVEL.get(finding.severity.value, "info")
        getattr(self._log, level)("finding", **data)

    def close(self) -> None:
        self._stream.flush()


def oru_r40(finding: Finding) -> str:
    """A finding as an IHE PCD ACM alert (ORU^R40): an advisory, time-point alert."""
    return _acm_message(
        _AcmAlarm(
            control_id=finding.finding_id,
            alarm_id=finding.finding_id,
            patient_id=finding.patient_id,
            code=finding.code,
            rule_id=finding.rule_id,
            severity=finding.severity.value,
            ts=finding.ts,
        ),
        phase="tpoint",
        state="active",
        text=finding.message,
        note=finding.action,
    )


def oru_r40_withdrawal(withdrawal: Withdrawal) -> str:
    """A withdrawal as the end of the finding's ACM alert (ORU^R40, phase end, state inactive).

    The alarm manager matches it to the alert it ends by the alert's identity, so
    OBR-2/OBR-3 and the event code are the finding's, and OBR-29 (parent) names the
    finding's alert as well. MSH-10 is the withdrawal's own id: a receiver that
    de-duplicates on the control id must not take the end for a resent start.
    """
    return _acm_message(
        _AcmAlarm(
            control_id=withdrawal.withdrawal_id,
            alarm_id=withdrawal.withdraws,
            patient_id=withdrawal.patient_id,
            code=withdrawal.code,
            rule_id=withdrawal.rule_id,
            severity=withdrawal.severity.value,
            ts=withdrawal.ts,
        ),
        phase="end",
        state="inactive",
        text=f"Withdrawn: {withdrawal.reason}",
        note=withdrawal.reason,
        parent=True,
    )


@dataclass(frozen=True)
class _AcmAlarm:
    """The identity of one ACM alert, shared by its start and its end."""

    control_id: str
    alarm_id: str
    patient_id: str
    code: str
    rule_id: str
    severity: str
    ts: datetime


def _acm_message(
    alarm: _AcmAlarm, *, phase: str, state: str, text: str, note: str, parent: bool = False
) -> str:
    """One ORU^R40 for ``alarm`` in the given phase and state (segments joined by CR)."""
    when = format_dtm(alarm.ts)
    control = escape(alarm.control_id)
    aid = escape(alarm.alarm_id)
    ident = f"0^PUMPGUARD_{escape(alarm.code)}^PUMPGUARD"
    rows: list[tuple[str, str]] = [
        (ident, escape(alarm.code)),
        ("68480^MDC_ATTR_ALERT_SOURCE^MDC", escape(f"pumpguard {alarm.rule_id}")),
        ("68481^MDC_ATTR_EVENT_PHASE^MDC", phase),
        ("68482^MDC_ATTR_ALARM_STATE^MDC", state),
        ("68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC", "enabled"),
        ("68484^MDC_ATTR_ALARM_PRIORITY^MDC", _ACM_PRIORITY[alarm.severity]),
        ("68485^MDC_ATTR_ALERT_TYPE^MDC", "SA"),
        ("68546^MDC_ATTR_ALERT_TEXT^MDC", escape(text)),
    ]
    obr = f"OBR|1|{aid}^PUMPGUARD|{aid}^PUMPGUARD|196616^MDC_EVT_ALARM^MDC|||{when}"
    if parent:
        # OBR-29 (EIP): the parent alert's placer and filler ids, 22 fields after OBR-7.
        obr += "|" * 22 + f"{aid}&PUMPGUARD^{aid}&PUMPGUARD"
    segs = [
        (
            f"MSH|^~\\&|PUMPGUARD|PUMPGUARD|ACM|ACM|{when}||ORU^R40^ORU_R40|{control}|P|2.6|||AL|NE||"
            "UNICODE UTF-8|en^English^ISO639||IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"
        ),
        f"PID|||{escape(alarm.patient_id)}^^^PUMPGUARD^PI",
        obr,
    ]
    segs += [
        f"OBX|{i}|ST|{code}|1.0.0.0.{i}|{value}||||||F|||{when}"
        for i, (code, value) in enumerate(rows, start=1)
    ]
    segs.append(f"NTE|1||{escape(note)}")
    return "\r".join(segs)


class Hl7AlertSink(FindingSink):
    """ORU^R40 alerts to a stream, MLLP-framed (for a socket bridge) or CR text."""

    def __init__(self, stream: TextIO, framing: str = "mllp") -> None:
        if framing not in ("mllp", "cr"):
            msg = f"framing must be 'mllp' or 'cr', not {framing!r}"
            raise ValueError(msg)
        self._stream = stream
        self._framing = framing

    def write(self, finding: Finding) -> None:
        try:
            text = frame([oru_r40(finding)], self._framing)
        except (ValueError, UnsupportedEvent) as exc:
            msg = f"finding {finding.finding_id} cannot be written as HL7: {exc}"
            raise SinkError(msg, patient_id=finding.patient_id) from exc
        self._stream.write(text)
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


def detected_issue(finding: Finding) -> dict[str, Any]:
    """A finding as a FHIR R4 DetectedIssue (validated with the R4B model)."""
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": finding.finding_id,
        "identifier": [{"system": "urn:pumpguard:finding", "value": finding.finding_id}],
        "status": "final",
        "code": {
            "coding": [
                {"system": "urn:pumpguard:finding-code", "code": finding.code},
                {"system": "urn:pumpguard:rule", "code": finding.rule_id},
            ],
            "text": finding.code,
        },
        "severity": _FHIR_SEVERITY[finding.severity.value],
        "patient": {"reference": f"Patient/{finding.patient_id}"},
        "identifiedDateTime": rfc3339(finding.ts),
        "detail": f"{finding.message} [{finding.citation}]",
        "mitigation": [{"action": {"text": finding.action}}],
    }
    if finding.evidence:
        resource["evidence"] = [{"detail": [{"display": e} for e in finding.evidence]}]
    _validate_detected_issue(resource, f"finding {finding.finding_id}", finding.patient_id)
    return resource


def detected_issue_withdrawal(withdrawal: Withdrawal) -> dict[str, Any]:
    """A withdrawal as the finding's DetectedIssue, now ``entered-in-error``.

    Same ``id`` and the finding's identifier first, so a PUT (or a conditional
    update on the identifier) replaces the DetectedIssue the finding created; the
    withdrawal's own id is a second identifier, the late events its evidence.
    """
    fid = withdrawal.withdraws
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": fid,
        "identifier": [
            {"system": "urn:pumpguard:finding", "value": fid},
            {"system": "urn:pumpguard:withdrawal", "value": withdrawal.withdrawal_id},
        ],
        "status": "entered-in-error",
        "code": {
            "coding": [
                {"system": "urn:pumpguard:finding-code", "code": withdrawal.code},
                {"system": "urn:pumpguard:rule", "code": withdrawal.rule_id},
            ],
            "text": withdrawal.code,
        },
        "severity": _FHIR_SEVERITY[withdrawal.severity.value],
        "patient": {"reference": f"Patient/{withdrawal.patient_id}"},
        "detail": f"Withdrawn at {rfc3339(withdrawal.ts)}: {withdrawal.reason}",
    }
    if withdrawal.evidence:
        resource["evidence"] = [{"detail": [{"display": e} for e in withdrawal.evidence]}]
    _validate_detected_issue(resource, f"withdrawal of {fid}", withdrawal.patient_id)
    return resource


def _validate_detected_issue(resource: dict[str, Any], what: str, patient_id: str) -> None:
    from fhir.resources.R4B.detectedissue import DetectedIssue

    try:
        DetectedIssue.model_validate(resource)
    except Exception as exc:  # fhir.resources raises more than ValidationError
        msg = f"{what} is not a valid DetectedIssue: {exc}"
        raise SinkError(msg, patient_id=patient_id) from exc


class FhirDetectedIssueSink(FindingSink):
    """One FHIR R4 DetectedIssue JSON per line (NDJSON)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, finding: Finding) -> None:
        self._stream.write(json.dumps(detected_issue(finding), ensure_ascii=False) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


_KINDS = ("jsonl", "structlog", "hl7", "hl7-cr", "fhir")


def make_sink(kind: str, stream: TextIO) -> FindingSink:
    """A sink by name: jsonl, structlog, hl7 (MLLP-framed), hl7-cr, fhir (DetectedIssue)."""
    if kind == "jsonl":
        return JsonlFindingSink(stream)
    if kind == "structlog":
        return StructlogFindingSink(stream)
    if kind in ("hl7", "hl7-mllp"):
        return Hl7AlertSink(stream, "mllp")
    if kind == "hl7-cr":
        return Hl7AlertSink(stream, "cr")
    if kind in ("fhir", "detectedissue"):
        return FhirDetectedIssueSink(stream)
    msg = f"unknown sink {kind!r}; use one of {', '.join(_KINDS)}"
    raise ValueError(msg)


class AtomicTextFile:
    """A text file written beside its target and renamed over it only by :meth:`commit`.

    A run that fails half-way must leave yesterday's findings file as it was,
    byte for byte, not a truncated one that reads as "fewer findings". The
    temporary file sits in the target's folder so the rename is atomic (same
    file system); a symbolic link is followed, so the file it names is replaced.
    Raises :class:`SinkError` when the target cannot be written at all.
    """

    def __init__(self, target: str | Path, what: str = "output") -> None:
        self.target = Path(os.path.realpath(target))
        self.what = what
        if self.target.is_dir():
            msg = f"{what} file {target}: is a directory"
            raise SinkError(msg)
        try:
            fd, tmp = tempfile.mkstemp(
                dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".partial"
            )
        except OSError as exc:
            msg = f"{what} file {target}: {exc.strerror or exc}"
            raise SinkError(msg) from exc
        self._tmp = Path(tmp)
        self.stream: TextIO = os.fdopen(fd, "w", encoding="utf-8")
        self._done = False

    def commit(self) -> None:
        """Put the written text in place of the target (keeping the target's permissions)."""
        if self._done:
            return
        self.stream.close()
        try:
            mode = stat.S_IMODE(self.target.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(self._tmp, mode)
        os.replace(self._tmp, self.target)
        self._done = True

    def discard(self) -> None:
        """Drop what was written; the target stays as it was. Safe to call twice."""
        if self._done:
            return
        self.stream.close()
        self._tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> AtomicTextFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit on success, discard on any exception (even Ctrl-C)."""
        if exc_type is None:
            self.commit()
        else:
            self.discard()
