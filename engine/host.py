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


class RuleHost:
    """Evaluates compiled conditions on durable-rules, one ruleset per rule."""

    def __init__(self, conditions: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
        self._fired: list[str] = []
        self._seq = 0
        definitions: dict[str, Any] = {}
        actions: dict[str, Callable[..., None]] = {}
        self.always: set[str] = set()
        for rule_id, cond in conditions:
            pattern: dict[str, Any] = {"$ex": {"type": 1}} if cond is None else cond
            definitions[rule_id] = {rule_id: {"all": [{"m": pattern}], "run": rule_id}}
            actions[rule_id] = self._recorder(rule_id)
        self.definitions = definitions
        self._host = _Host(definitions, actions) if definitions else None

    def _recorder(self, rule_id: str) -> Callable[..., None]:
        fired = self._fired

        def record(_closure: Any) -> None:
            fired.append(rule_id)

        return record

    def evaluate(self, rule_ids: Iterable[str], message: dict[str, Any]) -> list[str]:
        """Post ``message`` to each rule's ruleset; return the ids that matched, in order.

        The message is checked by the gate and serialised once for all rulesets
        (durable-rules' ``Host.post`` would serialise it again per ruleset, and
        once more to build each "not handled" exception).
        """
        check_message(message)
        matched: list[str] = []
        host = self._host
        if host is None:
            return matched
        self._seq += 1
        message["id"] = str(self._seq)
        text = json.dumps(message, ensure_ascii=False)
        del message["id"]
        errors: list[BaseException] = []

        def done(error: BaseException | None, _state: Any) -> None:
            if error is not None:
                errors.append(error)

        for rule_id in rule_ids:
            self._fired.clear()
            try:
                ruleset = host.get_ruleset(rule_id)
                result = _native.assert_event(ruleset._handle, text)
                if result[0] == _NOT_HANDLED:
                    continue
                if result[0] == _OBSERVED:
                    msg = f"durable-rules saw message {self._seq} twice in rule {rule_id}"
                    raise RuleEvaluationError(msg, rule_id=rule_id)
                if result[0] != _NO_ACTION:
                    errors.clear()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        ruleset.do_actions(result[1], done)
                    if errors:
                        raise errors[0]
            except RuleEvaluationError:
                raise
            except Exception as exc:
                msg = f"durable-rules failed evaluating rule {rule_id}: {exc!r}"
                raise RuleEvaluationError(msg, rule_id=rule_id) from exc
            if self._fired:
                matched.append(rule_id)
        return matched
