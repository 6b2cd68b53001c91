"""The engine: one object, one pack, one clock, any number of patients.

For each event: fire the deadlines its time has passed, apply it to the
patient's derived state, post one message (event + state + facts) to the
rulesets that listen to its type, then carry out the matched rules' actions in
pack order. Conditions are decided by durable-rules; actions are a closed set
of verbs carried out here, after durable-rules returns.

Same instant: events at time t are applied before deadlines due at t, so a
window's end is inclusive.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from .clock import Clock, ReplayClock
from .compiler import event_field_kind
from .deadlines import Deadline, DeadlineQueue
from .errors import GateError, RuleEvaluationError
from .events import EVENT_TYPES, Event
from .expr import evaluate
from .findings import Finding, Severity, format_ts, make_finding_id
from .host import RuleHost
from .pack import CompiledPack, CompiledRule
from .state import PatientState
from .template import render

__all__ = ["ENGINE_ERROR_CODE", "Engine", "NearMiss"]

ENGINE_ERROR_CODE = "RULE_EVALUATION_FAILED"
"""Raised as a critical finding when a rule cannot be evaluated: a broken rule is an alert."""


def _readable_fields() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, model in EVENT_TYPES.items():
        out[name] = tuple(
            f
            for f, info in model.model_fields.items()
            if f != "type" and event_field_kind(info.annotation)
        )
    return out


_READABLE = _readable_fields()


def event_fields(event: Event) -> dict[str, Any]:
    """The event's readable fields as a durable-rules-safe dict (floats, no None)."""
    out: dict[str, Any] = {}
    for name in _READABLE.get(event.type, ()):
        value = getattr(event, name)
        if value is None:
            continue
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


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


class Engine:
    """Evaluates one compiled pack against a stream of canonical events."""

    def __init__(
        self,
        pack: CompiledPack,
        clock: Clock | None = None,
        *,
        on_error: Literal["alert", "raise"] = "alert",
        explain: bool = False,
        mode: Literal["replay", "live", "drill"] = "replay",
    ) -> None:
        self.pack = pack
        self.mode = mode
        self.clock: Clock = clock if clock is not None else ReplayClock()
        self.on_error = on_error
        self.explain = explain
        rules = [r for r in pack.rules if r.spec.modes is None or mode in r.spec.modes]
        self.rules = rules
        self._by_type: dict[str, list[CompiledRule]] = {}
        for rule in rules:
            for t in rule.spec.on:
                self._by_type.setdefault(t, []).append(rule)
        self._rule_ids = {t: [r.id for r in rules] for t, rules in self._by_type.items()}
        self._host = RuleHost(((r.id, _pattern(r)) for r in rules), groups=self._rule_ids.values())
        # Only the fields a type's rules read are posted: a smaller message to check and serialise.
        self._reads: dict[str, dict[str, tuple[str, ...]]] = {}
        for t, rules in self._by_type.items():
            reads: dict[str, set[str]] = {}
            for rule in rules:
                for ref in rule.condition.refs:
                    ns, _, name = ref.partition(".")
                    reads.setdefault(ns, set()).add(name)
            self._reads[t] = {ns: tuple(sorted(names)) for ns, names in reads.items()}
        self._patients: dict[str, PatientState] = {}
        self._deadlines = DeadlineQueue()
        self._params = {k: v for k, v in pack.params.items() if not isinstance(v, list | dict)}
        self.errors: list[RuleEvaluationError] = []
        self.near_misses: list[NearMiss] = []
        self.explanations: dict[str, dict[str, Any]] = {}
        self._opened_why: dict[str, Any] | None = None
        self.watermark = float("-inf")
        self.events_seen = 0

    # -- public API ---------------------------------------------------------
    @property
    def patients(self) -> Mapping[str, PatientState]:
        return self._patients

    def patient(self, patient_id: str) -> PatientState:
        p = self._patients.get(patient_id)
        if p is None:
            p = self._patients[patient_id] = PatientState(patient_id, self.pack.state_config)
        return p

    def submit(self, event: Event) -> list[Finding]:
        """Evaluate one event; return the findings it (and passed deadlines) raised."""
        ts = event.ts.timestamp()
        late = ts < self.watermark
        out: list[Finding] = []
        if not late:
            out.extend(self._fire(ts, inclusive=False))
            self.watermark = ts
        if isinstance(self.clock, ReplayClock):
            self.clock.observe(ts)
        self.events_seen += 1
        self._opened_why = None
        patient = self.patient(event.patient_id)
        evidence = (event.event_id,)
        try:
            passing = patient.apply(event, ts)
            if event.type not in self._by_type:
                return out
            message = {
                "type": event.type,
                "event": event_fields(event),
                "state": patient.view(event, ts, passing),
                "facts": dict(patient.facts),
            }
        except Exception as exc:  # a failure inside evaluation is an alert, never an exception
            out.append(self._engine_alert(_evaluation_error(exc), patient, ts, evidence))
            return out
        out.extend(self._run(patient, message, ts, evidence, late=late))
        return out

    def submit_all(self, events: Iterable[Event]) -> list[Finding]:
        out: list[Finding] = []
        for e in events:
            out.extend(self.submit(e))
        return out

    def advance(self, until: float | None = None) -> list[Finding]:
        """Let the clock reach ``until`` (default: the clock's now); fire deadlines due by then."""
        now = self.clock.now() if until is None else until
        out = self._fire(now, inclusive=True)
        self.watermark = max(self.watermark, now)
        return out

    def next_due(self) -> float | None:
        """When a live scheduler should next call :meth:`advance`."""
        return self._deadlines.next_due()

    # -- internals ----------------------------------------------------------
    def _fire(self, until: float, *, inclusive: bool) -> list[Finding]:
        out: list[Finding] = []
        for d in self._deadlines.pop_due(until, inclusive=inclusive):
            out.extend(self._fire_one(d))
        return out

    def _fire_one(self, d: Deadline) -> list[Finding]:
        self._opened_why = d.why
        patient = self.patient(d.patient_id)
        try:
            message = {
                "type": f"deadline.{d.name}",
                "event": {},
                "deadline": dict(d.carry),
                "state": patient.view(None, d.due, {}),
                "facts": dict(patient.facts),
            }
        except Exception as exc:
            return [self._engine_alert(_evaluation_error(exc), patient, d.due, d.evidence)]
        return self._run(patient, message, d.due, d.evidence, late=False)

    def _run(
        self,
        patient: PatientState,
        message: dict[str, Any],
        ts: float,
        evidence: tuple[str, ...],
        *,
        late: bool,
    ) -> list[Finding]:
        etype = message["type"]
        rules = self._by_type.get(etype)
        if not rules:
            return []
        out: list[Finding] = []
        posted: dict[str, Any] = {"sid": "0", "type": etype}
        for ns, names in self._reads[etype].items():
            source = message.get(ns, {})
            posted[ns] = {n: source[n] for n in names if n in source}
        try:
            matched = set(self._host.evaluate(self._rule_ids[etype], posted))
        except Exception as exc:
            error = _evaluation_error(exc)
            error.patient_id = patient.patient_id
            error.event_id = evidence[0] if evidence else None
            out.append(self._engine_alert(error, patient, ts, evidence))
            if isinstance(error, GateError) or not isinstance(exc, RuleEvaluationError):
                return out  # the message itself is refused: no rule can be evaluated on it
            # evaluate the others one by one so one broken rule does not silence the rest
            matched = set()
            for rule in rules:
                if rule.id == exc.rule_id:
                    continue
                try:
                    matched.update(self._host.evaluate([rule.id], posted))
                except RuleEvaluationError as again:
                    out.append(self._engine_alert(again, patient, ts, evidence))
        env = {
            "event": message["event"],
            "state": message["state"],
            "deadline": message.get("deadline", {}),
            "facts": message["facts"],
            "params": self._params,
        }
        # An episode ends only where no rule of its group matched the same event.
        seen = {_episode_group(r) for r in rules if r.id in matched and r.spec.once_keys}
        for rule in rules:
            if rule.id not in matched:
                if self.explain and rule.near_miss is not None:
                    self._near_miss(rule, patient, env, ts, evidence)
                continue
            keys = rule.spec.once_keys
            if keys:
                group = _episode_group(rule)
                key = tuple(_lookup(env, k) for k in keys)
                if patient.episodes.get(group) == key:
                    continue
                patient.episodes[group] = key
            try:
                out.extend(self._act(rule, patient, env, ts, evidence, late=late, seen=seen))
            except Exception as exc:
                error = _evaluation_error(exc, rule.id)
                out.append(self._engine_alert(error, patient, ts, evidence))
        return out

    def _act(
        self,
        rule: CompiledRule,
        patient: PatientState,
        env: Mapping[str, Mapping[str, Any]],
        ts: float,
        evidence: tuple[str, ...],
        *,
        late: bool,
        seen: set[str],
    ) -> list[Finding]:
        out: list[Finding] = []
        for action, value in zip(rule.actions, rule.values, strict=True):
            if action.raise_ is not None:
                finding = self._finding(rule, action.raise_, patient, env, ts, evidence, late)
                if self.explain:
                    self.explanations[finding.finding_id] = {
                        "rule": rule.id,
                        "when": rule.condition.source,
                        "values": {ref: _lookup(env, ref) for ref in rule.condition.refs},
                        "carried": dict(env.get("deadline", {})),
                        "opened_by": self._opened_why,
                    }
                out.append(finding)
            elif action.open_deadline is not None and value is not None:
                spec = action.open_deadline
                hours = evaluate(value, env)
                if not isinstance(hours, int | float) or hours != hours:
                    continue  # an unknown duration opens nothing: the rule's condition guards it
                carry = {k: _lookup(env, ref) for k, ref in spec.carry.items()}
                carry = {k: v for k, v in carry.items() if v is not None}
                d = self._deadlines.open(
                    patient.patient_id,
                    spec.name,
                    ts + max(0.0, float(hours)) * 3600.0,
                    opened_by=rule.id,
                    carry=carry,
                    evidence=evidence,
                    before_events=spec.at_due == "before_events",
                )
                if self.explain:
                    d.why = {
                        "rule": rule.id,
                        "at": format_ts(ts),
                        "when": rule.condition.source,
                        "values": {ref: _lookup(env, ref) for ref in rule.condition.refs},
                    }
            elif action.close_deadline is not None:
                self._deadlines.close(patient.patient_id, action.close_deadline)
            elif action.end_episode is not None:
                if action.end_episode not in seen:
                    patient.episodes.pop(action.end_episode, None)
            elif action.set is not None:
                new = evaluate(value, env) if value is not None else action.set.value
                if isinstance(new, int) and not isinstance(new, bool):
                    new = float(new)
                if new is None:
                    patient.facts.pop(action.set.fact, None)
                else:
                    patient.facts[action.set.fact] = new
        return out

    def _finding(
        self,
        rule: CompiledRule,
        spec: Any,
        patient: PatientState,
        env: Mapping[str, Mapping[str, Any]],
        ts: float,
        evidence: tuple[str, ...],
        late: bool,
    ) -> Finding:
        state = env["state"]
        message = render(spec.message, env)
        details: dict[str, Any] = {}
        if "cycle" in state:
            details["cycle"] = int(state["cycle"])
            if state.get("cycle_inferred"):
                details["cycle_inferred"] = True
                if "cycle" in message.lower():
                    message += " (cycle number inferred: no cycle order on record)"
        if self.pack.site is not None:
            details["site"] = self.pack.site
        when = format_ts(ts)
        ev = list(evidence)
        severity = spec.severity or self.pack.spec.codes[spec.code].severity
        return Finding(
            finding_id=make_finding_id(rule.id, patient.patient_id, ev, when),
            code=spec.code,
            rule_id=rule.id,
            severity=severity,
            patient_id=patient.patient_id,
            ts=when,
            message=message,
            action=render(spec.action, env),
            evidence=ev,
            citation=rule.spec.citation,
            rule_pack=self.pack.ref,
            requirement=rule.spec.requirement,
            late=late,
            details=details,
        )

    def _engine_alert(
        self, exc: RuleEvaluationError, patient: PatientState, ts: float, evidence: tuple[str, ...]
    ) -> Finding:
        self.errors.append(exc)
        if self.on_error == "raise":
            raise exc
        when = format_ts(ts)
        rule_id = exc.rule_id or "ENGINE"
        return Finding(
            finding_id=make_finding_id(rule_id, patient.patient_id, list(evidence), when),
            code=ENGINE_ERROR_CODE,
            rule_id=rule_id,
            severity=Severity.CRITICAL,
            patient_id=patient.patient_id,
            ts=when,
            message=f"Rule {rule_id} could not be evaluated for this event: {exc.message}",
            action="Treat this patient's protocol as unchecked for this rule; "
            "inform biomed and pharmacy informatics.",
            evidence=list(evidence),
            citation="pumpguard engine",
            rule_pack=self.pack.ref,
            requirement="ENGINE",
            details={},
        )

    def _near_miss(
        self,
        rule: CompiledRule,
        patient: PatientState,
        env: Mapping[str, Mapping[str, Any]],
        ts: float,
        evidence: tuple[str, ...],
    ) -> None:
        assert rule.near_miss is not None
        if evaluate(rule.near_miss.tree, env) is not True:
            return
        values = {ref: _lookup(env, ref) for ref in rule.condition.refs}
        spec = rule.spec.near_miss
        self.near_misses.append(
            NearMiss(
                rule_id=rule.id,
                patient_id=patient.patient_id,
                ts=format_ts(ts),
                event_id=evidence[0] if evidence else "",
                message=render(spec.message, env) if spec is not None else "",
                because=_why_not(rule.condition.tree, env),
                values=values,
            )
        )


def _evaluation_error(exc: Exception, rule_id: str | None = None) -> RuleEvaluationError:
    """Any failure inside evaluation, as the engine's own error (to be raised as an alert)."""
    if isinstance(exc, RuleEvaluationError):
        if rule_id is not None and exc.rule_id is None:
            exc.rule_id = rule_id
        return exc
    error = RuleEvaluationError(f"{type(exc).__name__}: {exc}", rule_id=rule_id)
    error.__cause__ = exc
    return error


def _episode_group(rule: CompiledRule) -> str:
    return rule.spec.once_group or rule.id


def _pattern(rule: CompiledRule) -> dict[str, Any]:
    """The rule's durable-rules pattern: its trigger types and its condition."""
    types: list[dict[str, Any]] = [{"type": t} for t in rule.spec.on]
    trigger = types[0] if len(types) == 1 else {"$or": types}
    cond = rule.condition.durable
    return trigger if cond is None else {"$and": [trigger, cond]}


def _lookup(env: Mapping[str, Mapping[str, Any]], ref: str) -> Any:
    if ref == "patient":
        return "patient"
    ns, _, name = ref.partition(".")
    return env.get(ns, {}).get(name)


def _why_not(tree: ast.expr, env: Mapping[str, Mapping[str, Any]]) -> str:
    """The first conjunct that was not true, as written in the pack."""
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    for part in parts:
        if evaluate(part, env) is not True:
            return ast.unparse(part)
    return ast.unparse(tree)
