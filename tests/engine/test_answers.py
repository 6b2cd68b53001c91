"""durable-rules' answers remembered by the exact text asked (``host.ANSWERS_KEPT``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pumpguard.engine import host as host_module
from pumpguard.engine.errors import RuleEvaluationError
from test_expr import CONDITIONS, values
from test_part_flip import _host


def _message(state: dict[str, Any]) -> dict[str, Any]:
    return {"sid": "0", "type": "t", "state": state}


def test_a_settled_group_asked_the_same_message_again_answers_without_asking_durable_rules() -> (
    None
):
    host = _host("state.x >= 1")
    assert host.evaluate(["R"], _message({"x": 2.0})) == ["R"]
    asked = host._seq
    assert host.evaluate(["R"], _message({"x": 2.0})) == ["R"]
    assert host._seq == asked  # no fact asserted for the repeat
    assert host.evaluate(["R"], _message({"x": 0.0})) == []
    assert host._seq == asked + 1  # another text is asked


@settings(max_examples=150, deadline=None)
@given(states=st.lists(values, min_size=1, max_size=6), src=st.sampled_from(CONDITIONS))
def test_a_remembered_answer_is_the_one_durable_rules_gives_a_fresh_host(
    states: list[dict[str, Any]], src: str
) -> None:
    remembering = _host(src)
    for state in [*states, *states]:  # every message twice: the second time remembered
        fresh = _host(src)
        assert remembering.evaluate(["R"], _message(state)) == fresh.evaluate(
            ["R"], _message(state)
        )


def test_a_watched_group_asks_durable_rules_every_message() -> None:
    host = _host("state.x >= 1", flip_after=3)
    asked = []
    for _ in range(3):
        before = host._seq
        host.evaluate(["R"], _message({"x": 2.0}))
        asked.append(host._seq - before)
    assert asked[0] == asked[1] == asked[2] >= 2  # the rule and its negation, each time
    assert not host._answers


def test_answers_kept_are_bounded_and_the_oldest_goes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host_module, "ANSWERS_KEPT", 4)
    host = _host("state.x >= 1")
    for x in range(10):
        host.evaluate(["R"], _message({"x": float(x)}))
    assert len(host._answers) == 4
    asked = host._seq
    host.evaluate(["R"], _message({"x": 9.0}))  # among the newest: remembered
    assert host._seq == asked
    host.evaluate(["R"], _message({"x": 0.0}))  # the oldest, gone: asked again
    assert host._seq == asked + 1


def test_a_failure_is_not_remembered_and_the_same_message_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = _host("state.x >= 1")
    real = host._assert_fact
    calls = []

    def failing_once(name: str, text: str) -> list[str]:
        calls.append(text)
        if len(calls) == 1:
            raise RuntimeError("native failure")
        return real(name, text)

    monkeypatch.setattr(host, "_assert_fact", failing_once)
    with pytest.raises(RuleEvaluationError):
        host.evaluate(["R"], _message({"x": 2.0}))
    assert not host._answers
    assert host.evaluate(["R"], _message({"x": 2.0})) == ["R"]
    assert len(calls) == 2


def test_a_parts_own_ruleset_is_registered_only_when_rule_by_rule_evaluation_asks_it(
    pack: Any,
) -> None:
    from pumpguard.engine.core import Engine

    host = Engine(pack).host
    assert host._host is not None
    registered = set(host._host._ruleset_directory)
    assert registered
    assert all(name.startswith("group#") for name in registered)
    etype, rules = max(host._types.items(), key=lambda item: len(item[1]))
    assert len(rules) > 1  # rule by rule, then, each rule's parts on their own
    held, failures = host.match_each(etype, {"event": {}, "state": {}, "facts": {}})
    assert not failures
    assert held <= set(rules)
    asked = set(host._host._ruleset_directory) - registered
    assert asked & set(host._parts)  # rules that are not a group of their own


def test_answers_kept_hold_the_bytes_asked_and_not_the_encoders_buffer() -> None:
    import tracemalloc

    host = _host("state.x >= 1")
    host.evaluate(["R"], _message({"x": -1.0}))  # the rulesets registered first
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for x in range(200):
            host.evaluate(["R"], _message({"x": float(x)}))
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(host._answers) == 201
    assert kept < 200 * 1024  # orjson's own bytes hold about 8 KB each
