"""The when-language: checked at load time, compiled for durable-rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pumpguard.engine.expr import ExprError, compile_condition, evaluate
from pumpguard.engine.host import RuleHost

KINDS = {"x": "num", "y": "num", "flag": "bool", "where": "str"}


def resolve(ns: str, name: str):
    if ns == "state" and name in KINDS:
        return KINDS[name]
    raise ExprError(f"{ns}.{name} unknown")


def compile_(src: str, **params):
    return compile_condition(src, params, resolve)


@pytest.mark.parametrize(
    ("src", "why"),
    [
        ("state.nope > 1", "state.nope unknown"),
        ("state.where > 1", "compared with a num"),
        ("state.x == 'a'", "compared with a str"),
        ("state.x", "not a yes/no field"),
        ("params.missing > 1", "unknown parameter"),
        ("__import__('os')", "not a condition"),
        ("state.x > ", "not a valid expression"),
        ("state.x == none", "is none"),
        ("state.where < 'b'", "only == and != apply"),
    ],
)
def test_bad_conditions_are_refused_with_a_reason(src, why):
    with pytest.raises(ExprError, match=why):
        compile_(src)


def test_params_become_constants():
    """Thresholds are substituted at load time: the compiled rule holds the number."""
    c = compile_("state.x >= params.limit", limit=4)
    assert c.durable == {"$gte": {"state.x": 4.0}}


def test_field_on_the_right_is_guarded():
    """durable-rules treats a missing field in arithmetic as 0; the compiler guards it."""
    c = compile_("state.x > state.y * 1.05")
    assert {"$ex": {"state.y": 1}} in c.durable["$and"]


def _fires(src: str, state: dict) -> bool:
    cond = compile_(src)
    pattern = {"$and": [{"type": "t"}, cond.durable]} if cond.durable else {"type": "t"}
    host = RuleHost([("R", pattern)])
    return host.evaluate(["R"], {"sid": "0", "type": "t", "state": state}) == ["R"]


CONDITIONS = [
    "state.x >= 4",
    "not state.x >= 4",
    "state.flag and state.x < state.y",
    "not (state.flag or state.x > 2)",
    "state.where in ['home', 'ward']",
    "state.where not in ['home']",
    "state.x is none or state.x > state.y + 1",
    "not state.y <= state.x + 1.5",
    "1 < state.x <= 3",
    "state.where != 'home' and not state.flag",
]

values = st.fixed_dictionaries(
    {},
    optional={
        "x": st.sampled_from([0.0, 1.0, 2.5, 3.0, 4.0, 7.0]),
        "y": st.sampled_from([0.0, 1.0, 4.0, 5.5]),
        "flag": st.booleans(),
        "where": st.sampled_from(["home", "ward", "icu"]),
    },
)


@settings(max_examples=150, deadline=None)
@given(state=values, src=st.sampled_from(CONDITIONS))
def test_durable_rules_and_the_python_evaluator_agree(state, src):
    """The compiled condition decides exactly as the language says, unknowns included."""
    cond = compile_(src)
    expected = evaluate(cond.tree, {"state": state}) is True
    assert _fires(src, state) == expected


def test_unknown_value_makes_comparison_false_and_negation_true():
    assert not _fires("state.x > 1", {})
    assert _fires("not state.x > 1", {})


def test_every_listed_condition_compiles():
    for src in CONDITIONS:
        assert compile_(src).durable is not None


def test_chained_comparison_is_a_conjunction():
    fired = [_fires("1 < state.x <= 3", {"x": v}) for v in (1.0, 2.0, 3.0, 3.5)]
    assert fired == [False, True, True, False]


def test_refs_are_listed_once_in_order():
    c = compile_("state.x > 1 and state.y > state.x")
    assert c.refs == ("state.x", "state.y")


def test_all_operators_have_negations():
    from pumpguard.engine import expr

    for op in expr._NEGATE:
        assert expr._NEGATE[expr._NEGATE[op]] == op
