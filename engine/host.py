"""The only module that touches durable-rules.

How we use it, and why (``research/durable-rules.md``):

- **One fact per event type.** durable-rules consumes an event at its first
  firing (#400), so two rules matching one event would raise one finding. The
  rules of one event type share a ruleset, and each message is asserted there
  as a fact (which fires every rule it matches) and retracted straight after.
- **Stateless matching.** Every rule is one pattern over one message that
  carries the event and the derived state; nothing joins, so no event is ever
  left pending (#347) and memory stays flat. Per-patient state lives in the
  engine, so the 1024-sid limit and the 32-bit id hashing never apply: every
  message goes to sid ``"0"`` with a fresh sequential id.
- **Our own host.** A ``Host`` subclass without the two background timer
  threads, no ``durable.lang`` module globals, and definitions deep-copied
  (``Ruleset.__init__`` deletes ``run``). Two engines never share anything.
- **Flat messages.** durable-rules gets every field under a short key of its own
  and conditions renamed to match: it parses nested objects at twice the cost.
- **The cheaper question.** A type's first messages are asked of its rules and,
  on a second ruleset, of their negations (which must disagree); afterwards a
  rule that fired more than its negation is asked the negation (``flip``). The
  next messages do the same part by part (``flip_parts``): a part of a split
  rule that holds for nearly every message is then asked its negation.
- **Errors surface.** Firings are read and completed through the native API, so
  no action of ours runs inside durable-rules (where an error would be
  swallowed); any error durable-rules raises becomes a
  :class:`RuleEvaluationError`.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .errors import RuleEvaluationError
from .gate import check_message
from .negation import negated_part

if TYPE_CHECKING:
    from .compiler import CompiledRule

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import durable.engine as _durable
    import durable_rules_engine as _native

# Result codes of durable_rules_engine.assert_event (durable/engine.py _handle_result).
_NOT_HANDLED = 1
_OBSERVED = 2
_NO_ACTION = 3

__all__ = ["RuleHost"]


class _Host(_durable.Host):  # type: ignore[misc]
    """durable-rules' Host, minus its timer threads, with actions from a dict.

    The rulesets in ``definitions`` are registered now; those in ``later`` when
    first asked for (durable-rules' own ``load_ruleset`` hook): a rule's parts each
    have a ruleset of their own for rule-by-rule use, which an engine asks only
    after a failure, and registering them all cost more than the group rulesets.
    """

    def __init__(
        self,
        definitions: dict[str, Any],
        actions: dict[str, Callable[..., None]],
        later: dict[str, Any] | None = None,
    ) -> None:
        self._pg_actions = actions
        self._pg_later = later or {}
        super().__init__(copy.deepcopy(definitions))

    def get_action(self, action_name: str) -> Callable[..., None]:
        return self._pg_actions[action_name]

    def load_ruleset(self, ruleset_name: str) -> dict[str, Any]:
        if ruleset_name not in self._pg_later:
            msg = f"Ruleset with name {ruleset_name} not found"
            raise KeyError(msg)
        return {ruleset_name: copy.deepcopy(self._pg_later[ruleset_name])}

    def _run(self) -> None:
        """No background threads: time is ours, not durable-rules'."""


MAX_LOGIC_NODES = 14
"""durable-rules refuses 16 or more ``$and``/``$or`` nodes in a condition (error 113)."""


def logic_nodes(expr: Any) -> int:
    """How many ``$and``/``$or`` nodes a durable-rules expression has."""
    if isinstance(expr, dict):
        own = sum(1 for k in expr if k in ("$and", "$or"))
        return own + sum(logic_nodes(v) for v in expr.values())
    if isinstance(expr, list):
        return sum(logic_nodes(v) for v in expr)
    return 0


def flatten_logic(expr: Any, *, once: bool = False) -> Any:
    """Flatten ``$and`` in ``$and`` and ``$or`` in ``$or``, and one-part ``$and``/``$or``.

    durable-rules refuses conditions nested about 16 levels deep (error 113);
    same-operator nesting changes nothing, so it is flattened away before a
    condition reaches it. ``once``: a term repeated among its siblings is kept
    once too (built negations repeat their ``$nex`` tests).
    """
    if isinstance(expr, list):
        return [flatten_logic(v, once=once) for v in expr]
    if not isinstance(expr, dict):
        return expr
    if len(expr) == 1:
        ((op, body),) = expr.items()
        if op in ("$and", "$or") and isinstance(body, list):
            flat: list[Any] = []
            for part in flatten_logic(body, once=once):
                if isinstance(part, dict) and len(part) == 1 and op in part:
                    flat.extend(part[op])
                else:
                    flat.append(part)
            if once:
                flat = list({json.dumps(t, sort_keys=True): t for t in flat}.values())
            return flat[0] if len(flat) == 1 else {op: flat}
    return {k: flatten_logic(v, once=once) for k, v in expr.items()}


Plan = str | tuple[str, list[Any]]
"""A ruleset name, or ("$and" | "$or", [sub-plans]) over several rulesets."""


def _leaves(plan: Plan) -> list[str]:
    if isinstance(plan, str):
        return [plan]
    return [leaf for p in plan[1] for leaf in _leaves(p)]


def _holds(plan: Plan, fired: set[str]) -> bool:
    """Whether a rule's plan holds, given which of its parts durable-rules fired."""
    if isinstance(plan, str):
        return plan in fired
    op, parts = plan
    if op == "$and":
        return all(_holds(p, fired) for p in parts)
    return any(_holds(p, fired) for p in parts)


Test = Callable[[set[str]], bool]
"""A plan compiled to a test of the set of parts that fired."""


def _lifted(plan: Plan) -> Plan:
    """The same plan with nested parts of the same operator lifted into their parent."""
    if isinstance(plan, str):
        return plan
    op, parts = plan
    flat: list[Any] = []
    for part in map(_lifted, parts):
        if not isinstance(part, str) and part[0] == op:
            flat.extend(part[1])
        else:
            flat.append(part)
    return (op, flat)


def compile_plan(plan: Plan) -> Test:
    """The plan as one test (what :func:`_holds` says, without walking the plan per message).

    Nested parts of one operator are lifted first (``a and (b and c)``: one subset
    test); the plain parts of an ``$and`` are tested together, before any nested one.
    """
    plan = _lifted(plan)
    if isinstance(plan, str):
        return lambda fired: plan in fired
    op, parts = plan
    names = frozenset(p for p in parts if isinstance(p, str))
    tests = tuple(compile_plan(p) for p in parts if not isinstance(p, str))
    if op == "$and":
        if not tests:
            return names.issubset
        if len(tests) == 1:
            (only,) = tests
            return lambda fired: names.issubset(fired) and only(fired)
        return lambda fired: names.issubset(fired) and all(t(fired) for t in tests)
    if not tests:
        return lambda fired: not names.isdisjoint(fired)
    return lambda fired: not names.isdisjoint(fired) or any(t(fired) for t in tests)


def split(expr: dict[str, Any], name: str, out: dict[str, Any]) -> Plan:
    """Split a condition too large for one ruleset into parts that fit.

    Each part is still evaluated by durable-rules; the plan only says that all
    (``$and``) or one (``$or``) of the parts must match. Parts are registered in
    ``out`` under ``name#n``.
    """
    if logic_nodes(expr) <= MAX_LOGIC_NODES:
        leaf = f"{name}#{len(out)}"
        # Every part tests for "type": durable-rules re-asserts its own session state
        # after each action, and a part made only of $nex tests would match that
        # state object and fire forever.
        out[leaf] = {"$and": [{"$ex": {"type": 1}}, expr]}
        return leaf
    ((op, children),) = expr.items()
    if op not in ("$and", "$or") or not isinstance(children, list):
        msg = f"condition of {name} is too large for durable-rules and cannot be split"
        raise RuleEvaluationError(msg, rule_id=name)
    parts: list[Plan] = []
    chunk: list[Any] = []
    for child in children:
        if logic_nodes(child) >= MAX_LOGIC_NODES:
            parts.append(split(child, name, out))
            continue
        if chunk and logic_nodes({op: [*chunk, child]}) > MAX_LOGIC_NODES:
            parts.append(split({op: chunk} if len(chunk) > 1 else chunk[0], name, out))
            chunk = []
        chunk.append(child)
    if chunk:
        parts.append(split({op: chunk} if len(chunk) > 1 else chunk[0], name, out))
    return parts[0] if len(parts) == 1 else (op, parts)


def _encode(message: dict[str, Any]) -> bytes:
    """The message as JSON for durable-rules, without its id (the gate already refused
    what would not encode).

    orjson writes the same values as the standard encoder (shortest round-trip
    floats, UTF-8 text), without its spaces, in a tenth of the time; durable-rules
    parses either alike. These bytes are also the key of what durable-rules
    answered (:data:`ANSWERS_KEPT`).
    """
    return orjson.dumps(message)


def _with_id(raw: bytes, seq: int) -> str:
    """The text durable-rules is asked: ``raw`` (a JSON object, never empty: it has
    ``sid`` and ``type``) with the fact's id as its last member."""
    return (raw[:-1] + b',"id":"%d"}' % seq).decode()


def _fired_rule(action: str) -> str:
    """The rule key a native firing names: the first key of its JSON text.

    durable_rules_engine hands a firing back as ``{"<rule key>": {...}}``; only
    the key is needed, and decoding the whole text (the message again) would
    cost a JSON parse per firing. Keys are ours (``k<n>`` or a part name), so
    they hold no quote.
    """
    return action[2 : action.index('"', 2)]


def _pattern(rule: CompiledRule, *, negated: bool = False) -> dict[str, Any]:
    """The rule's durable-rules pattern: its trigger types and its condition (or its negation)."""
    types: list[dict[str, Any]] = [{"type": t} for t in rule.spec.on]
    trigger = types[0] if len(types) == 1 else {"$or": types}
    expr = rule.condition.negated if negated else rule.condition.durable
    cond = None if expr is None else flatten_logic(expr)
    return trigger if cond is None else {"$and": [trigger, cond]}


def _renamed(expr: Any, short: dict[str, str]) -> Any:
    """A durable-rules expression with every field path (``state.x``) as a flat key.

    durable-rules parses a message of nested objects at about twice the cost of the
    same values flat under short keys, so every message is posted flat and every
    condition names the flat keys; ``short`` is the table (new paths are added).
    Operators, ``type`` and constants are kept as they are.
    """
    if isinstance(expr, list):
        return [_renamed(x, short) for x in expr]
    if not isinstance(expr, dict):
        return expr
    out: dict[str, Any] = {}
    for key, value in expr.items():
        if key == "$m":
            out[key] = _short_key(value, short)
        elif key.startswith("$"):
            out[key] = _renamed(value, short)
        else:
            out[_short_key(key, short)] = _renamed(value, short)
    return out


def _short_key(path: str, short: dict[str, str]) -> str:
    if "." not in path:  # "type", "sid", "id"
        return path
    key = short.get(path)
    if key is None:
        key = short[path] = f"p{len(short)}"
    return key


FLIP_AFTER = 256
"""Messages of a group watched before each rule's cheaper form is chosen (:meth:`RuleHost.flip`)."""


@dataclass
class _Watch:
    """A watched group's count of messages, and of the firings of each rule in either form."""

    messages: int = 0
    plain: dict[str, int] = field(default_factory=dict)
    negated: dict[str, int] = field(default_factory=dict)

    def tally(self, fired: set[str], denied: set[str], key: Callable[[str], str]) -> None:
        """Count one message: each part that fired in either form, under ``key`` of it."""
        for part in fired:
            k = key(part)
            self.plain[k] = self.plain.get(k, 0) + 1
        for part in denied:
            k = key(part)
            self.negated[k] = self.negated.get(k, 0) + 1
        self.messages += 1

    def cheaper(self, candidates: Iterable[str]) -> list[str]:
        """The candidates whose negation fired less than they did."""
        return [c for c in candidates if self.negated.get(c, 0) < self.plain.get(c, 0)]


def _rule_of_part(part: str) -> str:
    return part.partition("#")[0]


def _same(part: str) -> str:
    return part


ANSWERS_KEPT = 4096
"""How many of durable-rules' answers a host remembers, keyed by the exact text it was asked.

Each message is asserted as a fact and retracted before the next, so durable-rules'
answer depends on the text alone; and the same text comes back most of the time
(a clean 100,000-event stream asks 77,000 questions, 95 % of them asked before:
a pump status in a steady infusion posts the same few fields every time). A
remembered answer is durable-rules' own, given to the same bytes; nothing else
decides. Only settled rulesets are remembered (a watched group asks every message
again, so its check of the negations sees each one), a failure is never
remembered, and the oldest answer goes first, so memory stays flat.
"""


FIRING_CAP = 4096
"""Frames one firing may carry: more than any condition's ``$or`` paths, so a part fires once.

durable-rules expands every ``$or`` into its own path through the network, and a
message that satisfies several disjuncts completes the rule once per path: a
condition like ``(a or b) and (c or d) and (e or f)`` fired up to eight times for
one message, each firing a native call that decides nothing new. With ``cap`` a
rule delivers all its completed frames in one firing; which rules fired, and so
every decision, is unchanged.
"""


def _rule_body(expr: dict[str, Any], action: str) -> dict[str, Any]:
    """One durable-rules rule: a single pattern, all its matches delivered in one firing."""
    return {"all": [{"m": expr}], "cap": FIRING_CAP, "run": action}


def _group_body(
    ruleset: str, leaves: list[list[tuple[str, dict[str, Any]]]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A group ruleset's rules (``k0``, ``k1``...: each rule's parts in turn) and which
    part each key stands for."""
    body: dict[str, Any] = {}
    parts: dict[str, str] = {}
    for rule_leaves in leaves:
        for part, expr in rule_leaves:
            key = f"k{len(body)}"
            body[key] = _rule_body(expr, f"{ruleset}:{key}")
            parts[key] = part
    return body, parts


def _action_names(ruleset: str, body: Mapping[str, Any]) -> list[str]:
    return [f"{ruleset}:{key}" for key in body]


def _not_run(_closure: Any) -> None:
    """durable-rules wants a callable per action; firings are read natively, so it never runs."""
    msg = "durable-rules ran an action itself; the engine reads firings natively"
    raise RuleEvaluationError(msg)


class RuleHost:
    """Evaluates compiled conditions on durable-rules.

    The rules that listen to one event type share one ruleset (a *group*; a rule
    too large for durable-rules joins it as its parts). Each message is
    asserted as a durable-rules *fact*, not an event: an event is consumed by
    its first firing (#400), a fact fires every rule it matches, in one call.
    The fact is retracted straight after, so nothing stays in the network and
    no two facts ever coexist (ids are sequential, so durable-rules' 32-bit id
    hashing cannot collide). Each event costs one assert and one retract,
    however many rules listen.
    """

    def __init__(
        self,
        conditions: Iterable[tuple[str, dict[str, Any] | None]],
        groups: Iterable[Iterable[str]] = (),
        negations: Mapping[str, dict[str, Any] | None] | None = None,
        *,
        flip_after: int | None = FLIP_AFTER,
    ) -> None:
        self._seq = 0
        self._answers: dict[tuple[str, bytes], tuple[str, ...]] = {}  # see ANSWERS_KEPT
        self._short: dict[str, str] = {}  # "state.x" -> its flat key in every message (_renamed)
        definitions: dict[str, Any] = {}
        actions: dict[str, Callable[..., None]] = {}
        self._plans: dict[str, Plan] = {}
        self._parts: dict[str, dict[str, Any]] = {}
        self._whole: dict[str, str] = {}  # part -> rule, for rules that are one part
        self._parts_of: dict[str, dict[str, str]] = {}  # ruleset -> rule key -> part
        for rule_id, cond in conditions:
            pattern: dict[str, Any] = {"$ex": {"type": 1}} if cond is None else cond
            pattern = _renamed(pattern, self._short)
            parts: dict[str, Any] = {}
            self._plans[rule_id] = plan = split(pattern, rule_id, parts)
            if isinstance(plan, str):
                self._whole[plan] = rule_id
            self._parts.update(parts)
            for part, expr in parts.items():  # a ruleset per part, for ungrouped use
                definitions[part] = {part: _rule_body(expr, part)}
                actions[part] = _not_run
                self._parts_of[part] = {part: part}
        self._groups: dict[tuple[str, ...], str] = {}
        self._split_of: dict[str, tuple[tuple[str, Test], ...]] = {}  # group -> its split rules
        self._rank: dict[str, dict[str, int]] = {}  # group -> each rule's place in it
        for n, group in enumerate(groups):
            ids = tuple(group)
            name = f"group#{n}"
            body, self._parts_of[name] = _group_body(name, [self._part_leaves(r) for r in ids])
            actions.update(dict.fromkeys(_action_names(name, body), _not_run))
            definitions[name] = body
            self._groups[ids] = name
            split_ids = [r for r in ids if not isinstance(self._plans[r], str)]
            self._split_of[name] = tuple((r, compile_plan(self._plans[r])) for r in split_ids)
            self._rank[name] = {r: i for i, r in enumerate(ids)}
        self._handles: dict[str, int] = {}
        self.definitions = definitions
        self._host = (
            _Host(
                {name: definitions[name] for name in self._groups.values()},
                actions,
                later={part: definitions[part] for part in self._parts},
            )
            if definitions
            else None
        )
        # Flipping (see flip): each rule's negation, split into parts like any condition.
        self._neg_plans: dict[str, Plan] = {}
        self._neg_parts: dict[str, dict[str, Any]] = {}
        for rule_id, neg in (negations or {}).items():
            if rule_id not in self._plans:
                continue
            parts = {}
            pattern = _renamed({"$ex": {"type": 1}} if neg is None else neg, self._short)
            self._neg_plans[rule_id] = split(pattern, f"{rule_id}#not", parts)
            self._neg_parts.update(parts)
        self._active = {name: name for name in self._split_of}  # group -> ruleset asserted
        self._flipped: dict[str, tuple[tuple[str, Test], ...]] = dict.fromkeys(self._split_of, ())
        self._watch: dict[str, _Watch] = (
            {}
            if flip_after is None or not self._neg_plans
            else {name: _Watch() for name in self._split_of}
        )
        self._flip_after = flip_after or 0
        # Part by part (flip_parts), once a group's rules are settled: the watch, each
        # ruleset's part negations, and the parts a ruleset asks as their negation.
        self._part_watch: dict[str, _Watch] = {}
        self._part_negations: dict[str, dict[str, dict[str, Any]]] = {}
        self._negated_parts: dict[str, frozenset[str]] = {}
        self._types: dict[str, tuple[str, ...]] = {}
        # per type, (namespace, ((field, flat key), ...)): what _posted copies
        self._posting: dict[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]] = {}

    @classmethod
    def for_rules(
        cls, by_type: Mapping[str, Sequence[CompiledRule]], *, flip_after: int | None = FLIP_AFTER
    ) -> RuleHost:
        """One ruleset per event type, with every rule that listens to it."""
        rules = {r.id: r for group in by_type.values() for r in group}
        host = cls(
            ((r.id, _pattern(r)) for r in rules.values()),
            groups=([r.id for r in group] for group in by_type.values()),
            negations={r.id: _pattern(r, negated=True) for r in rules.values()},
            flip_after=flip_after,
        )
        host._types = {t: tuple(r.id for r in group) for t, group in by_type.items()}
        # Only the fields a type's rules read are posted: a smaller message to check and serialise.
        # A field read only where the compiled condition folded away is not posted.
        for t, group in by_type.items():
            reads: dict[str, set[str]] = {}
            for rule in group:
                for ref in rule.condition.refs:
                    if ref in host._short:
                        ns, _, name = ref.partition(".")
                        reads.setdefault(ns, set()).add(name)
            host._posting[t] = tuple(
                (ns, tuple((n, host._short[f"{ns}.{n}"]) for n in sorted(names)))
                for ns, names in reads.items()
            )
        return host

    def match(self, event_type: str, message: Mapping[str, Any]) -> frozenset[str]:
        """The rules listening to ``event_type`` whose condition holds for ``message``.

        ``message`` has the namespaces rules read (event, state, facts, deadline);
        the gate checks what is posted and raises :class:`GateError` for a message
        durable-rules must not see.
        """
        return frozenset(self.matched(event_type, message))

    def matched(self, event_type: str, message: Mapping[str, Any]) -> list[str]:
        """What :meth:`match` says, as a list in the order the rules were given."""
        posted = self._posted(event_type, message)
        return self.evaluate(self._types.get(event_type, ()), posted, flat=True)

    def match_each(
        self, event_type: str, message: Mapping[str, Any], *, skip: str | None = None
    ) -> tuple[frozenset[str], list[RuleEvaluationError]]:
        """Rule by rule, so one broken rule does not silence the rest: matches and failures."""
        posted = self._posted(event_type, message)
        matched: set[str] = set()
        failures: list[RuleEvaluationError] = []
        for rule_id in self._types.get(event_type, ()):
            if rule_id == skip:
                continue
            try:
                matched.update(self.evaluate([rule_id], posted))
            except RuleEvaluationError as exc:
                failures.append(exc)
        return frozenset(matched), failures

    def facts_left(self) -> int:
        """Facts still asserted in durable-rules (always 0: each is retracted after matching)."""
        if self._host is None:
            return 0
        left = 0
        for name in self.definitions:
            try:
                left += len(self._host.get_facts(name, "0"))
            except Exception:
                continue
        return left

    def _posted(self, event_type: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """The message as durable-rules gets it: the fields the type's rules read, flat."""
        posted: dict[str, Any] = {"sid": "0", "type": event_type}
        for ns, names in self._posting.get(event_type, ()):
            source = message.get(ns)
            if not source:
                continue
            for name, short in names:
                if name in source:
                    posted[short] = source[name]
        return posted

    def _flattened(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message given by namespace (``{"state": {"x": 1.0}}``), flat: what no
        condition reads is left out (no rule can tell)."""
        flat: dict[str, Any] = {}
        for key, value in message.items():
            if type(value) is not dict:
                flat[key] = value
                continue
            for name, inner in value.items():
                short = self._short.get(f"{key}.{name}")
                if short is not None:
                    flat[short] = inner
        return flat

    def evaluate(
        self, rule_ids: Iterable[str], message: dict[str, Any], *, flat: bool = False
    ) -> list[str]:
        """Evaluate ``message`` against the rules; return those that matched, in the order given.

        ``message`` is by namespace, or flat as :meth:`_posted` makes it (``flat``:
        the caller made it so, and it is not looked through for namespaces).
        """
        check_message(message)
        if not flat and any(type(v) is dict for v in message.values()):
            message = self._flattened(message)
        ids = tuple(rule_ids)
        if self._host is None:
            return []
        name = self._groups.get(ids)
        if name is None:
            return self._one_by_one(ids, message)
        return self._decide(name, ids, message)

    def _decide(self, name: str, ids: tuple[str, ...], message: dict[str, Any]) -> list[str]:
        """Group ``name``'s rules that hold for the (flat, checked) ``message``, in order."""
        raw = _encode(message)
        active = self._active[name]
        part_watch = self._part_watch.get(name)
        settled = part_watch is None and name not in self._watch
        if settled:
            known = self._answers.get((active, raw))
            if known is not None:
                return list(known)
        held = self._held(name, ids, raw, active, part_watch)
        if settled:
            answers = self._answers
            if len(answers) >= ANSWERS_KEPT:
                del answers[next(iter(answers))]
            # a copy: orjson's bytes keep their whole write buffer (about 8 KB each)
            answers[(active, bytes(memoryview(raw)))] = tuple(held)
        return held

    def _held(
        self, name: str, ids: tuple[str, ...], raw: bytes, active: str, part_watch: _Watch | None
    ) -> list[str]:
        """What durable-rules says of ``raw`` on group ``name``'s ruleset ``active``: the
        rules that hold, in order (and, while watched, what their negations say)."""
        fired = self._fired(active, ids, raw)
        if part_watch is not None:
            self._compare_parts(name, ids, raw, fired, part_watch)
        if not fired and not self._flipped[name] and name not in self._watch:
            return []  # nothing fired, nothing flipped: no rule holds
        whole = self._whole  # a rule of one part holds where its part fired
        held = {whole[part] for part in fired if part in whole}
        held.update(r for r, holds in self._split_of[name] if holds(fired))
        # a flipped rule holds where its negation did not hold
        held.update(r for r, negation in self._flipped[name] if not negation(fired))
        watch = self._watch.get(name)
        if watch is not None:
            self._compare(name, ids, raw, fired, held, watch)
        return sorted(held, key=self._rank[name].__getitem__)

    def _compare(
        self,
        name: str,
        ids: tuple[str, ...],
        raw: bytes,
        fired: set[str],
        held: set[str],
        watch: _Watch,
    ) -> None:
        """While a group is watched, ask durable-rules every negation too: the answers
        must disagree rule by rule (else the message is an evaluation failure), and
        the firings each form costs are counted, for :meth:`flip`."""
        denied = self._denied(self._watch, name, lambda: self._shadow(name), ids, raw)
        both = [r for r in ids if r in self._neg_plans]
        alike = [r for r in both if (r in held) == _holds(self._neg_plans[r], denied)]
        if alike:  # never flipped, then: a negation that failed once is never trusted
            del self._watch[name]
            msg = f"durable-rules decided {', '.join(alike)} and their negations alike"
            raise RuleEvaluationError(msg, rule_id=alike[0] if len(alike) == 1 else None)
        watch.tally(fired, denied, _rule_of_part)
        if watch.messages >= self._flip_after:
            del self._watch[name]
            self.flip(name, watch.cheaper(both))
            if self._part_shadow(self._active[name]) is not None:
                self._part_watch[name] = _Watch()

    def _denied(
        self,
        watching: dict[str, _Watch],
        name: str,
        shadow: Callable[[], str],
        ids: tuple[str, ...],
        raw: bytes,
        what: str = "negations",
    ) -> set[str]:
        """What fired on a watched group's ruleset of negations (``shadow``, registered
        when first asked). A failure ends the watch, and is this message's alert."""
        try:
            return self._fired(shadow(), ids, raw)
        except Exception as exc:  # the group stays as it is, and this message is an alert
            del watching[name]
            if isinstance(exc, RuleEvaluationError):
                raise
            msg = f"durable-rules refused the {what} of {', '.join(ids)}: {exc!r}"
            raise RuleEvaluationError(msg) from exc

    def _compare_parts(
        self,
        name: str,
        ids: tuple[str, ...],
        raw: bytes,
        fired: set[str],
        watch: _Watch,
    ) -> None:
        """:meth:`_compare`, part by part: durable-rules asked every part's negation must
        disagree with the part on each watched message, and the firings are counted,
        for :meth:`flip_parts`."""
        active = self._active[name]
        shadow = f"{active}~parts-negated"  # registered when the watch began
        denied = self._denied(self._part_watch, name, lambda: shadow, ids, raw, "part negations")
        negations = self._part_negations[active]
        alike = [p for p in negations if (p in fired) == (p in denied)]
        if alike:
            del self._part_watch[name]
            msg = f"durable-rules decided the parts {', '.join(alike)} and their negations alike"
            raise RuleEvaluationError(msg)
        watch.tally(fired, denied, _same)
        if watch.messages >= self._flip_after:
            del self._part_watch[name]
            self.flip_parts(name, watch.cheaper(negations))

    def _part_shadow(self, ruleset: str) -> str | None:
        """A ruleset asking the negation of every part of ``ruleset`` that has one (None if
        none has), registered when first asked."""
        shadow = f"{ruleset}~parts-negated"
        if shadow in self._parts_of:
            return shadow
        if ruleset in self._part_negations or ruleset in self._negated_parts:
            return None  # asked before, or its parts are flipped already (once is all)
        negations: dict[str, dict[str, Any]] = {}
        for part, expr in self._asked(ruleset):
            negation = negated_part(expr)
            if negation is not None:
                negation = flatten_logic(negation, once=True)
                if logic_nodes(negation) <= MAX_LOGIC_NODES:
                    negations[part] = negation
        self._part_negations[ruleset] = negations
        if not negations:
            return None
        self._register(shadow, [list(negations.items())])
        return shadow

    def _shadow(self, name: str) -> str:
        """The ruleset of group ``name`` with every rule negated (registered when first asked)."""
        shadow = f"{name}~negated"
        if shadow not in self._parts_of:
            self._register(shadow, [self._neg_leaves(r) for r in self._rank[name]])
        return shadow

    def _part_leaves(self, rule_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(p, self._parts[p]) for p in _leaves(self._plans[rule_id])]

    def _neg_leaves(self, rule_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(p, self._neg_parts[p]) for p in _leaves(self._neg_plans[rule_id])]

    def _register(self, ruleset: str, leaves: list[list[tuple[str, dict[str, Any]]]]) -> None:
        """Register one more group ruleset on the running host (a flipped or negated group)."""
        assert self._host is not None
        body, self._parts_of[ruleset] = _group_body(ruleset, leaves)
        self._host._pg_actions.update(dict.fromkeys(_action_names(ruleset, body), _not_run))
        self._host.register_rulesets(copy.deepcopy({ruleset: body}))
        self.definitions[ruleset] = body

    def flip(self, name: str, rule_ids: Iterable[str]) -> list[str]:
        """Ask durable-rules the negation of these rules of group ``name``; those flipped.

        A rule that holds for most messages fires for most of them, and each
        firing is a native call that tells the engine what it expected. Asked
        ``not (condition)`` instead (compiled by the same compiler, unknowns
        included), durable-rules fires only where the rule does not hold, and the
        rule holds exactly where its negation does not: the same decision, still
        durable-rules', with fewer firings. A group is re-registered once, as a
        new ruleset; a watched group picks the form of each rule that fired less
        over its first :data:`FLIP_AFTER` messages.
        """
        if self._host is None or self._flipped.get(name):
            return []
        wanted = set(rule_ids)
        flips = [r for r in self._rank[name] if r in wanted and r in self._neg_plans]
        if not flips:
            return []
        tuned = f"{name}~flipped"
        self._register(
            tuned,
            [self._neg_leaves(r) if r in flips else self._part_leaves(r) for r in self._rank[name]],
        )
        self._flipped[name] = tuple((r, compile_plan(self._neg_plans[r])) for r in flips)
        self._split_of[name] = tuple((r, t) for r, t in self._split_of[name] if r not in flips)
        self._active[name] = tuned
        return flips

    def flip_parts(self, name: str, parts: Iterable[str]) -> list[str]:
        """Ask durable-rules the negation of these parts of group ``name``'s ruleset; those
        flipped.

        :meth:`flip`, for the parts of split rules: a part asked as its negation held
        where its negation did not fire, so the parts that held are the same set, and
        every rule built of them decides as before. The ruleset is registered once
        more, with those parts negated; parts with no negation stay as they are.
        """
        if self._host is None:
            return []
        active = self._active[name]
        if self._part_shadow(active) is None:
            return []
        negations = self._part_negations[active]
        wanted = {p for p in parts if p in negations}
        if not wanted:
            return []
        tuned = f"{active}~parts"
        asked = self._asked(active)
        self._register(tuned, [[(p, negations[p] if p in wanted else e) for p, e in asked]])
        self._negated_parts[tuned] = frozenset(wanted)
        self._active[name] = tuned
        return [p for p, _ in asked if p in wanted]

    def _asked(self, ruleset: str) -> list[tuple[str, dict[str, Any]]]:
        """Each part of a registered ruleset and the condition it is asked, in key order."""
        body = self.definitions[ruleset]
        return [(part, body[key]["all"][0]["m"]) for key, part in self._parts_of[ruleset].items()]

    def _fired(self, name: str, ids: tuple[str, ...], raw: bytes) -> set[str]:
        """The parts of ruleset ``name`` that held (any failure raised as RuleEvaluationError).

        A part asked as its negation held where the negation did not fire: the
        symmetric difference with those parts turns what fired into what held.
        """
        try:
            fired = set(self._assert_fact(name, self._text(raw)))
        except RuleEvaluationError:
            raise
        except Exception as exc:
            msg = f"durable-rules failed evaluating {', '.join(ids)}: {exc!r}"
            raise RuleEvaluationError(msg, rule_id=ids[0] if len(ids) == 1 else None) from exc
        negated = self._negated_parts.get(name)
        return fired ^ negated if negated else fired

    def _text(self, raw: bytes) -> str:
        self._seq += 1
        return _with_id(raw, self._seq)

    def _assert_fact(self, name: str, text: str) -> list[str]:
        """Assert, collect every firing, retract: the names of the parts that matched.

        Firings are read from the native API and completed there: durable-rules'
        Python action path (a Closure, JSON decoding of the state and the
        message, a wall-clock read, a state update) is never needed.
        """
        assert self._host is not None
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = self._host.get_ruleset(name)._handle
        parts = self._parts_of[name]
        fired: list[str] = []
        result = _native.assert_fact(handle, text)
        try:
            if result[0] == _OBSERVED:
                msg = f"durable-rules saw message {self._seq} twice in {name}"
                raise RuleEvaluationError(msg)
            if result[0] not in (_NOT_HANDLED, _NO_ACTION):
                state_handle = result[1]
                pending = _native.start_action_for_state(handle, state_handle)
                action = pending[1] if pending else None
                complete = _native.complete_and_start_action
                while action:
                    fired.append(parts[_fired_rule(action)])
                    action = complete(handle, state_handle)
        finally:
            if result[0] != _NOT_HANDLED:
                _native.retract_fact(handle, text)
        return fired

    def _one_by_one(self, ids: tuple[str, ...], message: dict[str, Any]) -> list[str]:
        matched: list[str] = []
        if not ids:
            return matched
        text = self._text(_encode(message))
        for rule_id in ids:
            try:
                if self._check(self._plans[rule_id], text):
                    matched.append(rule_id)
            except RuleEvaluationError as exc:
                exc.rule_id = rule_id
                raise
            except Exception as exc:
                msg = f"durable-rules failed evaluating rule {rule_id}: {exc!r}"
                raise RuleEvaluationError(msg, rule_id=rule_id) from exc
        return matched

    def _check(self, plan: Plan, text: str) -> bool:
        if isinstance(plan, str):
            return self._post(plan, text)
        op, parts = plan
        if op == "$and":
            return all(self._check(p, text) for p in parts)
        return any(self._check(p, text) for p in parts)

    def _post(self, name: str, text: str) -> bool:
        """One part's own ruleset: True if its single rule fired."""
        return name in self._assert_fact(name, text)
