"""Findings, version 1 (``spec/findings.md``): what the engine reports."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

__all__ = [
    "Finding",
    "RulePackRef",
    "Severity",
    "Withdrawal",
    "format_ts",
    "make_finding_id",
    "make_withdrawal_id",
    "rfc3339",
    "utc",
]


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse; used by ``--fail-on`` and sorting."""
        return _RANK[self]


_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class RulePackRef(BaseModel):
    """Which pack, edition and parameters were in force when a finding was raised."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    sha256: str
    edition: str
    parameters_sha256: str | None = None
    site: str | None = None


class Finding(BaseModel):
    """One departure from the protocol, with the events that prove it."""

    model_config = ConfigDict(frozen=True)

    finding_id: str
    code: str
    rule_id: str
    severity: Severity
    patient_id: str
    ts: AwareDatetime
    message: str
    action: str
    evidence: list[str]
    citation: str
    rule_pack: RulePackRef
    requirement: str
    late: bool = False
    details: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("ts")
    def _ts_text(self, value: datetime) -> str:
        return rfc3339(value)

    def to_json(self) -> str:
        """One JSONL line; keys in a fixed order so replays are byte-identical."""
        return self.model_dump_json()


class Withdrawal(BaseModel):
    """Live only: a finding the corrected history no longer raises (spec "Withdrawals").

    The spec's fields (``withdraws``, ``ts``, ``reason``, ``evidence``, ``rule_pack``) come
    first; ``withdrawal_id``, ``patient_id``, ``code``, ``rule_id`` and ``severity`` are added so
    a sink can address the alarm it ends without looking the finding up.
    """

    model_config = ConfigDict(frozen=True)

    withdraws: str
    ts: AwareDatetime
    reason: str
    evidence: list[str]
    rule_pack: RulePackRef
    withdrawal_id: str
    patient_id: str
    code: str
    rule_id: str
    severity: Severity

    @field_serializer("ts")
    def _ts_text(self, value: datetime) -> str:
        return rfc3339(value)

    def to_json(self) -> str:
        return self.model_dump_json()


def utc(epoch_s: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (the type of every ``ts`` a finding carries)."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def rfc3339(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second (microseconds when needed): the one formatter."""
    dt = value.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_ts(epoch_s: float) -> str:
    """Epoch seconds as :func:`rfc3339` text."""
    return rfc3339(utc(epoch_s))


def make_finding_id(rule_id: str, patient_id: str, evidence: list[str], ts: str) -> str:
    """Stable id: the same rule, patient, evidence and time always give the same id."""
    h = hashlib.sha256()
    for part in (rule_id, patient_id, ts, *evidence):
        h.update(part.encode())
        h.update(b"\x1f")
    return "F-" + h.hexdigest()[:20]


def make_withdrawal_id(finding_id: str, decided_at: str, evidence: list[str]) -> str:
    """Stable id of a withdrawal: the finding, when it was decided, the late events behind it."""
    h = hashlib.sha256()
    for part in (finding_id, decided_at, *evidence):
        h.update(part.encode())
        h.update(b"\x1f")
    return "W-" + h.hexdigest()[:20]
