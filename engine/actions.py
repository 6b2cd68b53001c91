"""Carrying out a matched rule's verbs: raise, open or close a deadline, set a fact, end an episode.

durable-rules decides which rules match; what they then do is a closed set of
verbs, carried out here in pack order after durable-rules returns, so no code
of ours runs inside it (where an error would be swallowed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .compiler import (
    CloseDeadline,
    CompiledPack,
    CompiledRule,
    OpenDeadline,
    RaiseFinding,
    SetFact,
)
from .deadlines import Deadline, DeadlineQueue
from .explain import Explainer, lookup
from .expr import Evaluator, compile_eval, evaluate
from .findings import Finding
from .gate import rule_value
from .rendering import finding_for
from .state import PatientState

__all__ = ["ActionRunner"]

Env = Mapping[str, Mapping[str, Any]]


class ActionRunner:
    """The verbs of one pack, over one deadline queue."""

    def __init__(
        self, pack: CompiledPack, deadlines: DeadlineQueue, observer: Explainer | None
    ) -> None:
        self.pack = pack
        self.deadlines = deadlines
        self.observer = observer
        # Each action expression compiled once, by the identity of its tree in the pack.
        self._evals: dict[int, Evaluator] = {}
        for rule in pack.rules:
            for step in rule.steps:
                tree = step.after_h if isinstance(step, OpenDeadline) else None
                if isinstance(step, SetFact):
                    tree = step.expr
                if tree is not None:
                    self._evals[id(tree)] = compile_eval(tree)

    def run(
        self,
        rule: CompiledRule,
        patient: PatientState,
        env: Env,
        ts: float,
        evidence: tuple[str, ...],
        *,
        late: bool,
        seen: set[str],
        opened: Deadline | None,
    ) -> list[Finding]:
        """Carry out ``rule``'s actions in order; ``seen`` are the episode groups that matched."""
        out: list[Finding] = []
        for step in rule.steps:
            if isinstance(step, RaiseFinding):
                finding = finding_for(
                    self.pack, rule, step.spec, patient.patient_id, env, ts, evidence, late=late
                )
                if self.observer is not None:
                    self.observer.raised(finding, rule, env, opened)
                out.append(finding)
            elif isinstance(step, OpenDeadline):
                self._open(rule, step, patient, env, ts, evidence)
            elif isinstance(step, CloseDeadline):
                self.deadlines.close(patient.patient_id, step.name)
            elif isinstance(step, SetFact):
                value = self._value(step.expr, env) if step.expr is not None else step.value
                new = rule_value(value)
                if new is None:
                    patient.facts.pop(step.fact, None)
                else:
                    patient.facts[step.fact] = new
            elif step.group not in seen:  # EndEpisode
                patient.episodes.pop(step.group, None)
        return out

    def _value(self, tree: Any, env: Env) -> Any:
        compiled = self._evals.get(id(tree))
        return compiled(env) if compiled is not None else evaluate(tree, env)

    def _open(
        self,
        rule: CompiledRule,
        step: OpenDeadline,
        patient: PatientState,
        env: Env,
        ts: float,
        evidence: tuple[str, ...],
    ) -> None:
        hours = self._value(step.after_h, env)
        if not isinstance(hours, int | float) or hours != hours:
            return  # an unknown duration opens nothing: the rule's condition guards it
        spec = step.spec
        carry = {k: lookup(env, ref) for k, ref in spec.carry.items()}
        d = self.deadlines.open(
            patient.patient_id,
            spec.name,
            ts + max(0.0, float(hours)) * 3600.0,
            opened_by=rule.id,
            carry={k: v for k, v in carry.items() if v is not None},
            evidence=evidence,
            before_events=spec.at_due == "before_events",
        )
        if self.observer is not None:
            self.observer.deadline_opened(d, rule, env, ts)
