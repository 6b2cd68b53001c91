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
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from .errors import RuleEvaluationError
from .gate import check_message

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import durable.engine as _durable

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
        """Post ``message`` to each rule's ruleset; return the ids that matched, in order."""
        check_message(message)
        matched: list[str] = []
        host = self._host
        if host is None:
            return matched
        for rule_id in rule_ids:
            self._seq += 1
            message["id"] = str(self._seq)
            self._fired.clear()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    host.post(rule_id, message)
            except _durable.MessageNotHandledException:
                continue
            except Exception as exc:
                msg = f"durable-rules failed evaluating rule {rule_id}: {exc!r}"
                raise RuleEvaluationError(msg, rule_id=rule_id) from exc
            if self._fired:
                matched.append(rule_id)
        message.pop("id", None)
        return matched
