"""Findings, version 1 (``spec/findings.md``): what the engine reports."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Finding", "RulePackRef", "Severity", "format_ts", "make_finding_id"]


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
    ts: str
    message: str
    action: str
    evidence: list[str]
    citation: str
    rule_pack: RulePackRef
    requirement: str
    late: bool = False
    details: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        """One JSONL line; keys in a fixed order so replays are byte-identical."""
        return self.model_dump_json()


def format_ts(epoch_s: float) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second (or microsecond when needed)."""
    dt = datetime.fromtimestamp(epoch_s, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_finding_id(rule_id: str, patient_id: str, evidence: list[str], ts: str) -> str:
    """Stable id: the same rule, patient, evidence and time always give the same id."""
    h = hashlib.sha256()
    for part in (rule_id, patient_id, ts, *evidence):
        h.update(part.encode())
        h.update(b"\x1f")
    return "F-" + h.hexdigest()[:20]
