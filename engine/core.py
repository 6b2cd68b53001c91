"""The engine: one object, one pack, one clock, any number of patients.

For each event: fire the deadlines its time has passed, apply it to the
patient's derived state, post one message (event + state + facts) to the
rulesets that listen to its type, then have the matched rules' actions carried
out in pack order (:mod:`.actions`). Conditions are decided by durable-rules
(:mod:`.host`); findings are worded by :mod:`.rendering`; explanations are an
observer (:mod:`.explain`) the engine notifies only when asked to.

Same instant: events at time t are applied before deadlines due at t, so a
window's end is inclusive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from copy import deepcopy as _deepcopy
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from .actions import ActionRunner
from .clock import Clock, ReplayClock
from .compiler import (
    CompiledPack,
    CompiledRule,
    OpenDeadline,
    RaiseFinding,
    SetFact,
    event_field_kind,
)
from .deadlines import Deadline, DeadlineQueue
from .errors import GateError, RuleEvaluationError
from .events import EVENT_TYPES, Event
from .explain import Explainer, NearMiss, lookup
from .expr import expr_refs
from .findings import Finding
from .gate import rule_value
from .host import RuleHost
from .rendering import ENGINE_ERROR_CODE, FINDING_READS, engine_alert
from .snapshot import EngineSnapshot, PatientSession
from .state import ALL_GROUPS, PatientState, groups_for
from .template import placeholders

__all__ = ["ENGINE_ERROR_CODE", "MAX_ERRORS_KEPT", "Engine", "NearMiss"]

MAX_ERRORS_KEPT = 1000
"""The last errors a long-running engine keeps for inspection (``error_count`` counts all)."""


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


def event_fields(event: Event, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The event's readable fields as a durable-rules-safe dict (floats, no None).

    ``names``: only these (the fields the type's rules read), else all readable ones.
    """
    out: dict[str, Any] = {}
    for name in _READABLE.get(event.type, ()) if names is None else names:
        value = getattr(event, name)
        kind = type(value)
        if kind is float or kind is str or kind is bool:  # the common case, as it is
            out[name] = value
        elif value is not None:
            out[name] = rule_value(value.value if isinstance(value, Enum) else value)
    return out


def _rule_reads(rule: CompiledRule) -> set[str]:
    """Every ``ns.name`` a rule reads: its condition, its actions' expressions, carried
    values, templates and episode keys, and what a finding's wording reads."""
    refs = set(rule.condition.refs)
    refs.update(rule.spec.once_keys)
    for step in rule.steps:
        if isinstance(step, RaiseFinding):
            for text in (step.spec.message, step.spec.action):
                refs.update(f"{ns}.{name}" for ns, name, _ in placeholders(text))
            refs.update(FINDING_READS)
        elif isinstance(step, OpenDeadline):
            refs.update(expr_refs(step.after_h))
            refs.update(step.spec.carry.values())
        elif isinstance(step, SetFact) and step.expr is not None:
            refs.update(expr_refs(step.expr))
    return refs


@dataclass(frozen=True, slots=True)
class _TypePlan:
    """What one event type's messages hold: the view groups and event fields its rules read."""

    groups: int
    event_names: tuple[str, ...] | None


def _type_plans(
    by_type: Mapping[str, list[CompiledRule]], *, everything: bool
) -> dict[str, _TypePlan]:
    """Per type, the view its rules read (all of it for an explaining engine, whose
    observer evaluates near misses on the whole environment)."""
    plans: dict[str, _TypePlan] = {}
    for etype, rules in by_type.items():
        if everything:
            plans[etype] = _TypePlan(ALL_GROUPS, None)
            continue
        refs = set().union(*(_rule_reads(r) for r in rules))
        state = [ref.partition(".")[2] for ref in refs if ref.startswith("state.")]
        readable = _READABLE.get(etype, ())
        names = tuple(n for n in readable if f"event.{n}" in refs)
        plans[etype] = _TypePlan(groups_for(state), names)
    return plans


class Engine:
    """Evaluates one compiled pack against a stream of canonical events.

    The clock says which use this is (``clock.mode``: replay, live or drill),
    and so which rules are in force (a rule may be live-only).
    """

    def __init__(
        self,
        pack: CompiledPack,
        clock: Clock | None = None,
        *,
        on_error: Literal["alert", "raise"] = "alert",
        explain: bool = False,
    ) -> None:
        self.pack = pack
        self.clock: Clock = clock if clock is not None else ReplayClock()
        self.on_error = on_error
        mode = self.clock.mode
        rules = [r for r in pack.rules if r.spec.modes is None or mode in r.spec.modes]
        self.rules = rules
        self._by_type: dict[str, list[CompiledRule]] = {}
        for rule in rules:
            for t in rule.spec.on:
                self._by_type.setdefault(t, []).append(rule)
        self._host = RuleHost.for_rules(self._by_type)
        self._plans = _type_plans(self._by_type, everything=explain)
        self._rule_of = {r.id: r for r in rules}
        # Looked up per event: each rule's id, and the episode group of rules that keep one.
        self._ids_by_type = {t: [(r, r.id) for r in rs] for t, rs in self._by_type.items()}
        self._once_groups = {r.id: _episode_group(r) for r in rules if r.spec.once_keys}
        self._patients: dict[str, PatientState] = {}
        self._deadlines = DeadlineQueue()
        self._params = {k: v for k, v in pack.params.items() if not isinstance(v, list | dict)}
        self.observer: Explainer | None = Explainer() if explain else None
        self._actions = ActionRunner(pack, self._deadlines, self.observer)
        self.errors: deque[RuleEvaluationError] = deque(maxlen=MAX_ERRORS_KEPT)
        self.error_count = 0
        self.watermark = float("-inf")

    # -- public API ---------------------------------------------------------
    @property
    def patients(self) -> Mapping[str, PatientState]:
        return self._patients

    @property
    def host(self) -> RuleHost:
        """The durable-rules host this engine evaluates on (for inspection and tests)."""
        return self._host

    @property
    def open_deadlines(self) -> int:
        """How many deadlines are open (a live scheduler's queue, bounded per patient)."""
        return len(self._deadlines)

    @property
    def near_misses(self) -> list[NearMiss]:
        return self.observer.near_misses if self.observer is not None else []

    @property
    def explanations(self) -> Mapping[str, dict[str, Any]]:
        return self.observer.explanations if self.observer is not None else {}

    def patient(self, patient_id: str) -> PatientState:
        p = self._patients.get(patient_id)
        if p is None:
            p = self._patients[patient_id] = PatientState(patient_id, self.pack.state_config)
        return p

    def submit(self, event: Event, *, at: float | None = None) -> list[Finding]:
        """Evaluate one event; return the findings it (and passed deadlines) raised.

        ``at``: the event's time as epoch seconds, when the caller has it already.
        """
        ts = event.ts.timestamp() if at is None else at
        late = ts < self.watermark
        out: list[Finding] = []
        if not late:
            if self._deadlines.due_by(ts):
                out.extend(self._fire(ts, inclusive=False))
            self.watermark = ts
        self.clock.observe(ts)
        patient = self._patients.get(event.patient_id)
        if patient is None:
            patient = self.patient(event.patient_id)
        evidence = (event.event_id,)
        try:
            passing = patient.apply(event, ts)
            plan = self._plans.get(event.type)
            if plan is None:
                return out
            message = {
                "type": event.type,
                "event": event_fields(event, plan.event_names),
                "state": patient.view(event, ts, passing, plan.groups),
                "facts": dict(patient.facts),
            }
        except Exception as exc:  # a failure inside evaluation is an alert, never an exception
            out.append(self._alert(_evaluation_error(exc), patient, ts, evidence))
            return out
        out.extend(self._run(patient, message, ts, evidence, late=late, opened=None))
        return out

    def submit_all(self, events: Iterable[Event]) -> list[Finding]:
        out: list[Finding] = []
        for e in events:
            out.extend(self.submit(e))
        return out

    def fire_overdue(self, patient_id: str, until: float) -> list[Finding]:
        """Fire one patient's deadlines due before ``until``, earliest first (a deadline one
        of them opens, if also due, fires too): the live core calls it before that patient's
        next event, since the engine's own time may be ahead of the patient's."""
        out: list[Finding] = []
        while (d := self._deadlines.pop_due_of(patient_id, until)) is not None:
            out.extend(self._fire_one(d))
        return out

    def advance(self, until: float | None = None, *, inclusive: bool = True) -> list[Finding]:
        """Let the clock reach ``until`` (default: the clock's now); fire deadlines due by then.

        ``inclusive=False`` fires only those due strictly before ``until``, as an event at
        ``until`` would (a re-evaluation catching up with an engine that saw one).
        """
        now = self.clock.now() if until is None else until
        out = self._fire(now, inclusive=inclusive)
        self.watermark = max(self.watermark, now)
        return out

    def reset(self, clock: Clock | None = None) -> None:
        """Forget every patient, deadline and error, keep the registered rules.

        A partitioned replay evaluates many partitions in one worker; durable-rules
        never frees a ruleset, so a worker reuses one engine instead of building more.
        """
        self.clock = clock if clock is not None else ReplayClock()
        self._patients = {}
        self._deadlines = DeadlineQueue()
        self.observer = Explainer() if self.observer is not None else None
        self._actions = ActionRunner(self.pack, self._deadlines, self.observer)
        self.errors.clear()
        self.error_count = 0
        self.watermark = float("-inf")

    def next_due(self) -> float | None:
        """When a live scheduler should next call :meth:`advance`."""
        return self._deadlines.next_due()

    # -- state as a value (the live service's snapshots and re-evaluations) --
    def export_patient(self, patient_id: str, *, copy: bool = True) -> PatientSession | None:
        """A copy of one patient's state and open deadlines (None if never seen).

        ``copy=False``: the live objects, for a caller that only pickles or imports them
        (both copy already; a deep copy first would double the cost of a checkpoint).
        """
        state = self._patients.get(patient_id)
        if state is None:
            return None
        session = PatientSession(state, tuple(self._deadlines.of_patient(patient_id)))
        return session.copy() if copy else session

    def import_patient(self, session: PatientSession) -> None:
        """Replace one patient's state and open deadlines with a copy of ``session``."""
        session = session.copy()
        pid = session.state.patient_id
        self._deadlines.drop_patient(pid)
        self._patients[pid] = session.state
        self._deadlines.adopt(list(session.deadlines))

    def drop_patient(self, patient_id: str) -> None:
        """Forget one patient entirely (a re-evaluation starting from nothing)."""
        self._deadlines.drop_patient(patient_id)
        self._patients.pop(patient_id, None)

    def snapshot(self, *, copy: bool = True) -> EngineSnapshot:
        """A copy of everything the engine would need to go on where it is.

        ``copy=False``: the live objects, for a caller that pickles them before the
        engine moves on (pickling copies; a deep copy first would double the cost).
        """
        deadlines = [d for pid in self._patients for d in self._deadlines.of_patient(pid)]
        snap = EngineSnapshot(
            dict(self._patients), tuple(deadlines), self.watermark, self.error_count
        )
        return _deepcopy(snap) if copy else snap

    def restore(self, snap: EngineSnapshot, *, copy: bool = True) -> None:
        """Go on from ``snap`` (taken from an engine of the same pack and code).

        ``copy=False``: adopt ``snap``'s objects, for a caller that has just unpickled
        it and keeps no other reference (restarts from a large snapshot are then
        about three times quicker).
        """
        if copy:
            snap = _deepcopy(snap)
        self._patients = dict(snap.patients)
        self._deadlines.clear()
        self._deadlines.adopt(list(snap.deadlines))
        self.watermark = snap.watermark
        self.error_count = snap.error_count

    # -- internals ----------------------------------------------------------
    def _fire(self, until: float, *, inclusive: bool) -> list[Finding]:
        out: list[Finding] = []
        for d in self._deadlines.pop_due(until, inclusive=inclusive):
            out.extend(self._fire_one(d))
        return out

    def _fire_one(self, d: Deadline) -> list[Finding]:
        patient = self.patient(d.patient_id)
        patient.fired_until = max(patient.fired_until, d.due)
        etype = f"deadline.{d.name}"
        plan = self._plans.get(etype)
        if plan is None:  # no rule listens to this deadline
            return []
        try:
            message = {
                "type": etype,
                "event": {},
                "deadline": dict(d.carry),
                "state": patient.view(None, d.due, None, plan.groups),
                "facts": dict(patient.facts),
            }
        except Exception as exc:
            return [self._alert(_evaluation_error(exc), patient, d.due, d.evidence)]
        return self._run(patient, message, d.due, d.evidence, late=False, opened=d)

    def _run(
        self,
        patient: PatientState,
        message: dict[str, Any],
        ts: float,
        evidence: tuple[str, ...],
        *,
        late: bool,
        opened: Deadline | None,
    ) -> list[Finding]:
        etype = message["type"]
        rules = self._by_type.get(etype)
        if not rules:
            return []
        out: list[Finding] = []
        matched: list[str]
        try:
            matched = self._host.matched(etype, message)
        except Exception as exc:
            error = _evaluation_error(exc)
            error.patient_id = patient.patient_id
            error.event_id = evidence[0] if evidence else None
            out.append(self._alert(error, patient, ts, evidence))
            if isinstance(error, GateError) or not isinstance(exc, RuleEvaluationError):
                return out  # the message itself is refused: no rule can be evaluated on it
            # evaluate the others one by one so one broken rule does not silence the rest
            held, failures = self._host.match_each(etype, message, skip=error.rule_id)
            out.extend(self._alert(f, patient, ts, evidence) for f in failures)
            matched = [rid for _, rid in self._ids_by_type[etype] if rid in held]
        if not matched and self.observer is None:
            return out  # no rule holds and nobody listens for those that do not
        env = {
            "event": message["event"],
            "state": message["state"],
            "deadline": message.get("deadline", {}),
            "facts": message["facts"],
            "params": self._params,
        }
        # An episode ends only where no rule of its group matched the same event.
        groups = self._once_groups
        seen = {groups[rid] for rid in matched if rid in groups}
        observer = self.observer
        if observer is None:  # the matched rules, already in pack order
            order = [(self._rule_of[rid], rid) for rid in matched]
        else:  # every rule, so the observer hears of those that did not match
            order = self._ids_by_type[etype]
            holding = set(matched)
        for rule, rule_id in order:
            if observer is not None and rule_id not in holding:
                observer.not_matched(rule, patient.patient_id, env, ts, evidence)
                continue
            if rule_id in groups and not self._episode_begins(rule, patient, env):
                continue
            try:
                out.extend(
                    self._actions.run(
                        rule, patient, env, ts, evidence, late=late, seen=seen, opened=opened
                    )
                )
            except Exception as exc:
                out.append(self._alert(_evaluation_error(exc, rule.id), patient, ts, evidence))
        return out

    @staticmethod
    def _episode_begins(rule: CompiledRule, patient: PatientState, env: Mapping[str, Any]) -> bool:
        """Whether a rule that keeps episodes acts: only where its group's episode key,
        read from this environment, differs from the one the group last acted on."""
        group = _episode_group(rule)
        key = tuple(lookup(env, k) for k in rule.spec.once_keys)
        if patient.episodes.get(group) == key:
            return False
        patient.episodes[group] = key
        return True

    def _alert(
        self, exc: RuleEvaluationError, patient: PatientState, ts: float, evidence: tuple[str, ...]
    ) -> Finding:
        self.errors.append(exc)
        self.error_count += 1
        if self.on_error == "raise":
            raise exc
        return engine_alert(self.pack, exc, patient.patient_id, ts, evidence)


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
