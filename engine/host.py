"""The only module that touches durable-rules.

How we use it, and why (``research/durable-rules.md``):

- **One rule per ruleset.** durable-rules consumes an event at its first
  firing (#400), so two rules matching one event would raise one finding. Each
  compiled rule gets its own ruleset, and a message is posted to every ruleset
  that listens to its type.
- **Stateless matching.** Every rule is one pattern over one message that
  carries the event and the derived state; nothing joins, so no event is ever
  left pending (#347) and memory stays flat. Per-patient state lives in the
  engine, so the 1024-sid limit and the 32-bit id hashing never apply: every
  message goes to sid ``"0"`` with a fresh sequential id.
- **Our own host.** A ``Host`` subclass without the two background timer
  threads, no ``durable.lang`` module globals, and definitions deep-copied
  (``Ruleset.__init__`` deletes ``run``). Two engines never share anything.
- **Errors surface.** An action cannot raise inside durable-rules (it only
  records the match); any error durable-rules raises while matching becomes a
  :class:`RuleEvaluationError` naming the rule.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from .errors import RuleEvaluationError
from .gate import check_message

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
    """durable-rules' Host, minus its timer threads, with actions from a dict."""

    def __init__(
        self, definitions: dict[str, Any], actions: dict[str, Callable[..., None]]
    ) -> None:
        self._pg_actions = actions
        super().__init__(copy.deepcopy(definitions))

    def get_action(self, action_name: str) -> Callable[..., None]:
        return self._pg_actions[action_name]

    def _run(self) -> None:
        """No background threads: time is ours, not durable-rules'."""


MAX_LOGIC_NODES = 12
"""durable-rules refuses a condition with about 15 ``$and``/``$or`` nodes (error 113)."""


def logic_nodes(expr: Any) -> int:
    """How many ``$and``/``$or`` nodes a durable-rules expression has."""
    if isinstance(expr, dict):
        own = sum(1 for k in expr if k in ("$and", "$or"))
        return own + sum(logic_nodes(v) for v in expr.values())
    if isinstance(expr, list):
        return sum(logic_nodes(v) for v in expr)
    return 0


Plan = str | tuple[str, list[Any]]
"""A ruleset name, or ("$and" | "$or", [sub-plans]) over several rulesets."""


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


class RuleHost:
    """Evaluates compiled conditions on durable-rules, one ruleset per rule (or part)."""

    def __init__(self, conditions: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        self._fired: list[str] = []
        self._seq = 0
        definitions: dict[str, Any] = {}
        actions: dict[str, Callable[..., None]] = {}
        self._plans: dict[str, Plan] = {}
        for rule_id, cond in conditions:
            pattern: dict[str, Any] = {"$ex": {"type": 1}} if cond is None else cond
            parts: dict[str, Any] = {}
            self._plans[rule_id] = split(pattern, rule_id, parts)
            for part, expr in parts.items():
                definitions[part] = {part: {"all": [{"m": expr}], "run": part}}
                actions[part] = self._recorder(part)
        self.definitions = definitions
        self._host = _Host(definitions, actions) if definitions else None

    def _recorder(self, name: str) -> Callable[..., None]:
        fired = self._fired

        def record(_closure: Any) -> None:
            fired.append(name)

        return record

    def evaluate(self, rule_ids: Iterable[str], message: dict[str, Any]) -> list[str]:
        """Post ``message`` to each rule's ruleset(s); return the ids that matched, in order.

        The message is checked by the gate and serialised once for all rulesets
        (durable-rules' ``Host.post`` would serialise it again per ruleset, and
        once more to build each "not handled" exception).
        """
        check_message(message)
        matched: list[str] = []
        if self._host is None:
            return matched
        self._seq += 1
        message["id"] = str(self._seq)
        text = json.dumps(message, ensure_ascii=False)
        del message["id"]
        for rule_id in rule_ids:
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
        assert self._host is not None
        self._fired.clear()
        ruleset = self._host.get_ruleset(name)
        result = _native.assert_event(ruleset._handle, text)
        if result[0] == _NOT_HANDLED:
            return False
        if result[0] == _OBSERVED:
            msg = f"durable-rules saw message {self._seq} twice in {name}"
            raise RuleEvaluationError(msg, rule_id=name)
        if result[0] != _NO_ACTION:
            errors: list[BaseException] = []

            def done(error: BaseException | None, _state: Any) -> None:
                if error is not None:
                    errors.append(error)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ruleset.do_actions(result[1], done)
            if errors:
                raise errors[0]
        return name in self._fired
