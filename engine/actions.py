"""Carrying out a matched rule's verbs: raise, open or close a deadline, set a fact, end an episode.

durable-rules decides which rules match; what they then do is a closed set of
verbs, carried out here in pack order after durable-rules returns, so no code
of ours runs inside it (where an error would be swallowed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .compiler import (
    CloseDeadline,
    CompiledPack,
    CompiledRule,
    EndEpisode,
    OpenDeadline,
    RaiseFinding,
    SetFact,
)
from .deadlines import Deadline, DeadlineQueue
from .explain import Explainer, split_ref
from .expr import Evaluator, compile_eval, evaluate
from .findings import Finding
from .gate import rule_value
from .rendering import finding_for
from .state import PatientState

__all__ = ["ActionRunner"]

Env = Mapping[str, Mapping[str, Any]]

_NONE: Mapping[str, Any] = {}
"""What an absent namespace reads as (shared, never written)."""


@dataclass(frozen=True, slots=True)
class _Open:
    """An ``open_deadline`` step as it runs: its duration's evaluator and where each
    carried value is read (:func:`.explain.split_ref`), worked out once per pack."""

    name: str
    hours: Evaluator
    carry: tuple[tuple[str, str, str | None], ...]
    before_events: bool


def _open_plan(step: OpenDeadline) -> _Open:
    return _Open(
        step.spec.name,
        compile_eval(step.after_h),
        tuple((key, *split_ref(ref)) for key, ref in step.spec.carry.items()),
        step.spec.at_due == "before_events",
    )


class ActionRunner:
    """The verbs of one pack, over one deadline queue."""

    def __init__(
        self, pack: CompiledPack, deadlines: DeadlineQueue, observer: Explainer | None
    ) -> None:
        self.pack = pack
        self.deadlines = deadlines
        self.observer = observer
        # Each step's expression compiled once, by the identity of the step in the pack.
        self._evals: dict[int, Evaluator] = {}
        self._opens: dict[int, _Open] = {}
        for rule in pack.rules:
            for step in rule.steps:
                if isinstance(step, OpenDeadline):
                    self._opens[id(step)] = _open_plan(step)
                elif isinstance(step, SetFact) and step.expr is not None:
                    self._evals[id(step)] = compile_eval(step.expr)

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
        for step in rule.steps:  # the commonest verbs first
            if isinstance(step, CloseDeadline):
                self.deadlines.close(patient.patient_id, step.name)
            elif isinstance(step, OpenDeadline):
                plan = self._opens.get(id(step))
                if plan is None:  # a rule from outside the pack
                    plan = _open_plan(step)
                self._open(plan, rule, patient, env, ts, evidence)
            elif isinstance(step, EndEpisode):
                if step.group not in seen:
                    patient.episodes.pop(step.group, None)
            elif isinstance(step, RaiseFinding):
                finding = finding_for(
                    self.pack, rule, step.spec, patient.patient_id, env, ts, evidence, late=late
                )
                if self.observer is not None:
                    self.observer.raised(finding, rule, env, opened)
                out.append(finding)
            else:
                self._set(step, patient, env)
        return out

    def _set(self, step: SetFact, patient: PatientState, env: Env) -> None:
        if step.expr is None:
            value = step.value
        else:
            compiled = self._evals.get(id(step))
            value = compiled(env) if compiled is not None else evaluate(step.expr, env)
        new = rule_value(value)
        if new is None:
            patient.facts.pop(step.fact, None)
        else:
            patient.facts[step.fact] = new

    def _open(
        self,
        plan: _Open,
        rule: CompiledRule,
        patient: PatientState,
        env: Env,
        ts: float,
        evidence: tuple[str, ...],
    ) -> None:
        hours = plan.hours(env)
        if not isinstance(hours, int | float) or hours != hours:
            return  # an unknown duration opens nothing: the rule's condition guards it
        carry: dict[str, Any] = {}
        for key, ns, name in plan.carry:
            value = ns if name is None else env.get(ns, _NONE).get(name)
            if value is not None:
                carry[key] = value
        d = self.deadlines.open(
            patient.patient_id,
            plan.name,
            ts + max(0.0, float(hours)) * 3600.0,
            opened_by=rule.id,
            carry=carry,
            evidence=evidence,
            before_events=plan.before_events,
        )
        if self.observer is not None:
            self.observer.deadline_opened(d, rule, env, ts)
