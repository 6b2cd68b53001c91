"""Parts of rules asked as their negation (``RuleHost.flip_parts``): the same decisions."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pumpguard.engine import host as host_module
from pumpguard.engine.errors import RuleEvaluationError
from pumpguard.engine.expr import compile_condition, evaluate
from pumpguard.engine.host import RuleHost, _pattern, flatten_logic
from pumpguard.engine.negation import negate, negated_part
from test_expr import CONDITIONS, resolve, values

_JOINED = st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=6).flatmap(
    lambda conds: st.sampled_from([" and ", " or "]).map(
        lambda op: op.join(f"({c})" for c in conds)
    )
)
"""A condition of one to six of the listed ones: the larger ones are split into parts."""


def _host(src: str, *, flip_after: int | None = None) -> RuleHost:
    cond = compile_condition(src, {}, resolve)
    rule = SimpleNamespace(spec=SimpleNamespace(on=["t"]), condition=cond, id="R")
    return RuleHost(
        [("R", _pattern(rule))],  # type: ignore[arg-type]
        groups=[["R"]],
        negations={"R": _pattern(rule, negated=True)},  # type: ignore[arg-type]
        flip_after=flip_after,
    )


def _every_part(host: RuleHost) -> list[str]:
    return list(host._parts_of[host._active["group#0"]].values())


@settings(max_examples=200, deadline=None)
@given(state=values, src=_JOINED)
def test_a_rule_whose_parts_are_asked_as_negations_holds_exactly_where_it_holds(
    state: dict[str, Any], src: str
) -> None:
    plain, flipped = _host(src), _host(src)
    assume(flipped.flip_parts("group#0", _every_part(flipped)))  # a part too large stays
    message = {"sid": "0", "type": "t", "state": state}
    expected = evaluate(compile_condition(src, {}, resolve).tree, {"state": state}) is True
    assert plain.evaluate(["R"], dict(message)) == (["R"] if expected else [])
    assert flipped.evaluate(["R"], dict(message)) == plain.evaluate(["R"], dict(message))


_SPLIT = " and ".join(
    [*(f"(state.x >= {i / 10} or state.y > 100)" for i in range(16)), "state.flag"]
)
"""A rule of several parts: every part but the flag's holds for x = 2."""


def test_a_group_asks_the_negation_of_the_parts_that_held_for_most_of_its_messages() -> None:
    host = _host(_SPLIT, flip_after=4)
    assert len(_every_part(host)) > 1
    for _ in range(8):  # the rules' own watch, then the parts'
        host.evaluate(["R"], {"sid": "0", "type": "t", "state": {"x": 2.0, "flag": False}})
    active = host._active["group#0"]
    assert active.endswith("~parts")
    assert host._negated_parts[active]
    held = [
        host.evaluate(["R"], {"sid": "0", "type": "t", "state": state})
        for state in ({"x": 0.0, "flag": True}, {"x": 2.0, "flag": True}, {"x": 2.0})
    ]
    assert held == [[], ["R"], []]
    assert host.facts_left() == 0
    assert host.flip_parts("group#0", _every_part(host)) == []  # flipped once, never twice


def test_a_part_durable_rules_decides_like_its_negation_is_an_evaluation_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host_module, "negated_part", lambda part: part)  # no negation at all
    host = _host("state.x >= 1", flip_after=1)
    host.evaluate(["R"], {"sid": "0", "type": "t", "state": {"x": 2.0}})  # the rules' watch
    assert "group#0" in host._part_watch
    with pytest.raises(RuleEvaluationError, match="alike"):
        host.evaluate(["R"], {"sid": "0", "type": "t", "state": {"x": 2.0}})
    assert "group#0" not in host._part_watch  # never trusted again
    assert host.evaluate(["R"], {"sid": "0", "type": "t", "state": {"x": 2.0}}) == ["R"]


def test_a_form_the_compiler_never_writes_has_no_negation() -> None:
    assert negate({"$mt": {"p0": "a.*"}}) is None
    assert negated_part({"$and": [{"$ex": {"type": 1}}, {"$mt": {"p0": "a.*"}}]}) is None
    assert negated_part({"$lt": {"p0": 1.0}}) is None  # not a part: no type test


def test_a_negated_part_keeps_its_type_test_and_drops_the_impossible_untyped_case() -> None:
    part = {"$and": [{"$ex": {"type": 1}}, {"$or": [{"type": "a"}, {"type": "b"}]}]}
    assert flatten_logic(negated_part(part), once=True) == {
        "$and": [{"$ex": {"type": 1}}, {"$neq": {"type": "a"}}, {"$neq": {"type": "b"}}]
    }


def test_a_term_repeated_among_its_siblings_is_kept_once_only_when_asked() -> None:
    absent, low = {"$nex": {"p0": 1}}, {"$lt": {"p0": 1.0}}
    expr = {"$or": [absent, {"$or": [absent, low]}]}
    assert flatten_logic(expr, once=True) == {"$or": [absent, low]}
    assert flatten_logic(expr) == {"$or": [absent, absent, low]}
