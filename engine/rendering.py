"""Findings as a nurse reads them: the pack's words with the numbers filled in.

Kept apart from the engine's loop so the wording of a finding (and of the
engine's own alert) has one place, whoever raised it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .compiler import CompiledPack, CompiledRule
from .errors import RuleEvaluationError
from .findings import Finding, Severity, format_ts, make_finding_id, utc
from .schema import RaiseAction
from .template import render

__all__ = ["ENGINE_ERROR_CODE", "FINDING_READS", "engine_alert", "finding_for"]

ENGINE_ERROR_CODE = "RULE_EVALUATION_FAILED"
"""Raised as a critical finding when a rule cannot be evaluated: a broken rule is an alert."""

Env = Mapping[str, Mapping[str, Any]]

FINDING_READS = ("state.cycle", "state.cycle_inferred")
"""What :func:`finding_for` reads of a rule's environment besides its templates."""


def finding_for(
    pack: CompiledPack,
    rule: CompiledRule,
    spec: RaiseAction,
    patient_id: str,
    env: Env,
    ts: float,
    evidence: tuple[str, ...],
    *,
    late: bool,
) -> Finding:
    """The finding a rule's ``raise`` action makes, its message and action rendered."""
    state = env["state"]
    message = render(spec.message, env)
    details: dict[str, Any] = {}
    if "cycle" in state:
        details["cycle"] = int(state["cycle"])
        if state.get("cycle_inferred"):
            details["cycle_inferred"] = True
            if "cycle" in message.lower():
                message += " (cycle number inferred: no cycle order on record)"
    if pack.site is not None:
        details["site"] = pack.site
    when = format_ts(ts)
    ev = list(evidence)
    return Finding(
        finding_id=make_finding_id(rule.id, patient_id, ev, when),
        code=spec.code,
        rule_id=rule.id,
        severity=spec.severity or pack.spec.codes[spec.code].severity,
        patient_id=patient_id,
        ts=utc(ts),
        message=message,
        action=render(spec.action, env),
        evidence=ev,
        citation=rule.spec.citation,
        rule_pack=pack.ref,
        requirement=rule.spec.requirement,
        late=late,
        details=details,
    )


def engine_alert(
    pack: CompiledPack,
    exc: RuleEvaluationError,
    patient_id: str,
    ts: float,
    evidence: tuple[str, ...],
) -> Finding:
    """The critical finding that stands for a rule the engine could not evaluate."""
    when = format_ts(ts)
    rule_id = exc.rule_id or "ENGINE"
    return Finding(
        finding_id=make_finding_id(rule_id, patient_id, list(evidence), when),
        code=ENGINE_ERROR_CODE,
        rule_id=rule_id,
        severity=Severity.CRITICAL,
        patient_id=patient_id,
        ts=utc(ts),
        message=f"Rule {rule_id} could not be evaluated for this event: {exc.message}",
        action="Treat this patient's protocol as unchecked for this rule; "
        "inform biomed and pharmacy informatics.",
        evidence=list(evidence),
        citation="pumpguard engine",
        rule_pack=pack.ref,
        requirement="ENGINE",
        details={},
    )
