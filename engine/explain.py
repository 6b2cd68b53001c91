"""Why a finding was raised, and which rules came close: an observer of the engine.

``pumpguard explain`` needs, per finding, the condition and the values that
made it true (for a deadline: what opened the window), and the near misses.
None of that is needed to decide, so it lives here, outside the engine's loop:
the engine notifies an :class:`Explainer` when one is attached and otherwise
keeps nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .compiler import CompiledRule
from .deadlines import Deadline
from .expr import evaluate
from .findings import Finding, format_ts
from .template import render

__all__ = ["Explainer", "NearMiss", "lookup"]

Env = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A rule that came close for a patient, and the values that kept it quiet."""

    rule_id: str
    patient_id: str
    ts: str
    event_id: str
    message: str
    because: str
    values: dict[str, Any]


def split_ref(ref: str) -> tuple[str, str | None]:
    """``ns.name`` as (ns, name); ``patient`` is a constant key, given as (its value, None)."""
    if ref == "patient":
        return "patient", None
    ns, _, name = ref.partition(".")
    return ns, name


def lookup(env: Env, ref: str) -> Any:
    """The value of ``ns.name`` in a rule's environment (``patient`` is a constant key)."""
    ns, name = split_ref(ref)
    return ns if name is None else env.get(ns, {}).get(name)


class Explainer:
    """Collects explanations and near misses for one run (an offline tool: it grows with it)."""

    def __init__(self) -> None:
        self.near_misses: list[NearMiss] = []
        self.explanations: dict[str, dict[str, Any]] = {}
        self._opened: dict[int, dict[str, Any]] = {}

    def deadline_opened(self, deadline: Deadline, rule: CompiledRule, env: Env, ts: float) -> None:
        self._opened[deadline.seq] = {
            "rule": rule.id,
            "at": format_ts(ts),
            "when": rule.condition.source,
            "values": _values(rule, env),
        }

    def raised(
        self, finding: Finding, rule: CompiledRule, env: Env, opened: Deadline | None
    ) -> None:
        self.explanations[finding.finding_id] = {
            "rule": rule.id,
            "when": rule.condition.source,
            "values": _values(rule, env),
            "carried": dict(env.get("deadline", {})),
            "opened_by": self._opened.get(opened.seq) if opened is not None else None,
        }

    def not_matched(
        self, rule: CompiledRule, patient_id: str, env: Env, ts: float, evidence: tuple[str, ...]
    ) -> None:
        """A rule that did not match: a near miss if its ``near_miss`` condition holds."""
        if rule.near_miss is None or evaluate(rule.near_miss.tree, env) is not True:
            return
        spec = rule.spec.near_miss
        self.near_misses.append(
            NearMiss(
                rule_id=rule.id,
                patient_id=patient_id,
                ts=format_ts(ts),
                event_id=evidence[0] if evidence else "",
                message=render(spec.message, env) if spec is not None else "",
                because=_why_not(rule.condition.tree, env),
                values=_values(rule, env),
            )
        )


def _values(rule: CompiledRule, env: Env) -> dict[str, Any]:
    return {ref: lookup(env, ref) for ref in rule.condition.refs}


def _why_not(tree: ast.expr, env: Env) -> str:
    """The first conjunct that was not true, as written in the pack."""
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    for part in parts:
        if evaluate(part, env) is not True:
            return ast.unparse(part)
    return ast.unparse(tree)
