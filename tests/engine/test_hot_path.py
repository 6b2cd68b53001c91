"""The evaluation path's shortcuts say exactly what the long way says.

Each shortcut of the hot path (a view limited to what a type's rules read, a
flattened plan test, compiled action expressions, spool fields decoded on
demand) is checked here against the general code it stands in for.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pumpguard.adapters.jsonl import JsonlSource
from pumpguard.engine.compiler import OpenDeadline, SetFact
from pumpguard.engine.core import _READABLE, Engine, _rule_reads
from pumpguard.engine.events import Event
from pumpguard.engine.expr import compile_condition, compile_eval, evaluate, parse_ref
from pumpguard.engine.host import Plan, RuleHost, _holds, _pattern, compile_plan
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.replay import SpoolLine, drive, quoted, spool_line, time_ordered
from pumpguard.engine.state import _GROUP_FIELDS, ALL_GROUPS, PatientState, groups_for
from pumpguard.engine.stateview import STATE_FIELDS
from pumpguard.pipeline import bundled_demo_course
from test_expr import CONDITIONS, resolve, values


def _course() -> list[Event]:
    return list(JsonlSource(bundled_demo_course()))


def test_every_state_field_belongs_to_exactly_one_view_group() -> None:
    placed = [f for names in _GROUP_FIELDS.values() for f in names]
    assert sorted(placed) == sorted(STATE_FIELDS)
    assert len(placed) == len(set(placed))


def test_a_field_no_group_places_takes_the_whole_view() -> None:
    assert groups_for(["no_such_field"]) == ALL_GROUPS
    assert groups_for(["cycle", "premed_dexamethasone_mg"]) != ALL_GROUPS


def test_a_view_of_some_groups_is_the_full_view_cut_to_their_fields(pack: CompiledPack) -> None:
    groups = [g for g in _GROUP_FIELDS if g]
    masks = [0, ALL_GROUPS, *groups, *(a | b for a, b in itertools.combinations(groups, 2))]
    patient = PatientState("p", pack.state_config)
    for event in _course():
        if event.patient_id != "p":
            event = event.model_copy(update={"patient_id": "p"})
        ts = event.ts.timestamp()
        passing = patient.apply(event, ts)
        full = dict(patient.view(event, ts, passing))
        for mask in masks:
            part = dict(patient.view(event, ts, passing, mask))
            wanted = {
                k: v for k, v in full.items() if not groups_for([k]) or groups_for([k]) & mask
            }
            assert part == wanted, (event.type, mask)


def _in_mask(field: str, mask: int) -> bool:
    group = groups_for([field])
    return not group or bool(group & mask)  # group 0 is in every view


def test_every_field_a_rule_reads_is_in_the_message_of_its_type(pack: CompiledPack) -> None:
    engine = Engine(pack)
    for etype, rules in engine._by_type.items():
        plan = engine._plans[etype]
        for rule in rules:
            for ref in _rule_reads(rule):
                ns, _, name = ref.partition(".")
                if ns == "state":
                    wanted = groups_for([name])
                    assert plan.groups & wanted == wanted, (rule.id, ref)
                elif ns == "event" and name in _READABLE.get(etype, ()):
                    assert plan.event_names is not None
                    assert name in plan.event_names, (rule.id, ref)


def test_an_explaining_engine_builds_the_whole_view(pack: CompiledPack) -> None:
    engine = Engine(pack, explain=True)
    assert {p.groups for p in engine._plans.values()} == {ALL_GROUPS}
    assert {p.event_names for p in engine._plans.values()} == {None}


def test_findings_of_the_demo_course_are_those_of_the_whole_view(pack: CompiledPack) -> None:
    course = _course()
    limited = Engine(pack).submit_all(course)
    whole = Engine(pack)
    whole._plans = {t: type(p)(ALL_GROUPS, None) for t, p in whole._plans.items()}
    assert [f.to_json() for f in limited] == [f.to_json() for f in whole.submit_all(course)]
    assert limited  # the demo course does raise findings


_NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
_PLANS: st.SearchStrategy[Plan] = st.recursive(
    _NAMES,
    lambda inner: st.tuples(st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(plan=_PLANS, fired=st.sets(_NAMES))
def test_a_compiled_plan_says_what_walking_the_plan_says(plan: Plan, fired: set[str]) -> None:
    assert compile_plan(plan)(fired) is _holds(plan, fired)


def _action_trees(pack: CompiledPack) -> list[ast.expr]:
    trees: list[ast.expr] = []
    for rule in pack.rules:
        for step in rule.steps:
            if isinstance(step, OpenDeadline):
                trees.append(step.after_h)
            elif isinstance(step, SetFact) and step.expr is not None:
                trees.append(step.expr)
    return trees


_VALUES = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.just(0.0))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_VALUES, min_size=8, max_size=8))
def test_compiled_action_expressions_give_what_evaluate_gives(
    pack: CompiledPack, values: list[Any]
) -> None:
    extra = [
        "state.x / state.y",
        "state.y - -state.y",
        "(1 + 2) * state.y / 0",
        "state.y / (2 - 2)",
    ]
    trees = [*_action_trees(pack), *(ast.parse(s, mode="eval").body for s in extra)]
    refs = sorted({r for t in trees for n in ast.walk(t) if (r := parse_ref(n)) is not None})
    env: dict[str, dict[str, Any]] = {}
    for (ns, name), value in zip(refs, itertools.cycle(values), strict=False):
        if value is not None:
            env.setdefault(ns, {})[name] = value
    for tree in trees:
        fast, slow = compile_eval(tree)(env), evaluate(tree, env)
        assert fast == slow or (fast != fast and slow != slow), ast.unparse(tree)  # or both NaN


def test_a_spool_line_decodes_its_patient_and_position_when_asked() -> None:
    event = _course()[0].model_copy(update={"patient_id": 'p\u00e9 \t"x"'})
    line = SpoolLine.parse(
        spool_line(7, 0, quoted(event.patient_id), "line 3\tof\n4", b"{}", ts_us=0, kind=0)
    )
    assert (line.seq, line.patient_id, line.position) == (7, 'p\u00e9 \t"x"', "line 3\tof\n4")


# -- flipping: durable-rules asked the negation of a usual rule ----------------------

_FLIP_CONDITIONS = [*CONDITIONS, "true", "false"]


def _pair(src: str) -> tuple[RuleHost, RuleHost]:
    """One host asking the condition, one asking its negation (flipped), for type "t"."""
    cond = compile_condition(src, {}, resolve)
    hosts = []
    for flipped in (False, True):
        rule = SimpleNamespace(spec=SimpleNamespace(on=["t"]), condition=cond, id="R")
        host = RuleHost(
            [("R", _pattern(rule))],  # type: ignore[arg-type]
            groups=[["R"]],
            negations={"R": _pattern(rule, negated=True)},  # type: ignore[arg-type]
            flip_after=None,
        )
        if flipped:
            assert host.flip("group#0", ["R"]) == ["R"]
        hosts.append(host)
    return hosts[0], hosts[1]


@settings(max_examples=200, deadline=None)
@given(state=values, src=st.sampled_from(_FLIP_CONDITIONS))
def test_a_flipped_rule_holds_exactly_where_the_rule_holds(state: dict[str, Any], src: str) -> None:
    plain, flipped = _pair(src)
    message = {"sid": "0", "type": "t", "state": state}
    expected = evaluate(compile_condition(src, {}, resolve).tree, {"state": state}) is True
    assert plain.evaluate(["R"], dict(message)) == (["R"] if expected else [])
    assert flipped.evaluate(["R"], dict(message)) == plain.evaluate(["R"], dict(message))


def test_a_group_flips_the_rules_that_held_for_most_of_its_first_messages() -> None:
    conds = {"USUAL": "state.x >= 1", "RARE": "state.x >= 5"}
    rules = [
        SimpleNamespace(
            spec=SimpleNamespace(on=["t"]), condition=compile_condition(s, {}, resolve), id=r
        )
        for r, s in conds.items()
    ]
    host = RuleHost(
        [(r.id, _pattern(r)) for r in rules],  # type: ignore[arg-type]
        groups=[list(conds)],
        negations={r.id: _pattern(r, negated=True) for r in rules},  # type: ignore[arg-type]
        flip_after=4,
    )
    for x in (2.0, 3.0, 6.0, 2.0):
        host.evaluate(list(conds), {"sid": "0", "type": "t", "state": {"x": x}})
    assert [rule for rule, _ in host._flipped["group#0"]] == ["USUAL"]
    results = [
        host.evaluate(list(conds), {"sid": "0", "type": "t", "state": {"x": x}})
        for x in (0.0, 2.0, 6.0)
    ]
    assert results == [[], ["USUAL"], ["USUAL", "RARE"]]
    assert host.facts_left() == 0


def _flip_rules(host: RuleHost) -> int:
    return sum(len(host.flip(name, list(ids))) for ids, name in host._groups.items())


def _flip_rules_and_parts(host: RuleHost) -> int:
    _flip_rules(host)
    for name in host._groups.values():
        host.flip_parts(name, list(host._parts_of[host._active[name]].values()))
    return sum(len(parts) for parts in host._negated_parts.values())


@pytest.mark.parametrize(
    ("tune", "least"),
    [(_flip_rules, 40), (_flip_rules_and_parts, 60)],
    ids=["every rule flipped", "every rule and part flipped"],
)
def test_every_scenario_decides_alike_flipped_or_not(
    pack: CompiledPack, tune: Callable[[RuleHost], int], least: int
) -> None:
    scenarios = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.jsonl"))
    assert len(scenarios) > 100
    plain, flipped = Engine(pack), Engine(pack)
    plain._host = RuleHost.for_rules(plain._by_type, flip_after=None)
    flipped._host = RuleHost.for_rules(flipped._by_type, flip_after=None)
    assert tune(flipped.host) > least  # most rules are one part either way
    raised = 0
    for path in scenarios:
        events = time_ordered(e for e in JsonlSource(path) if isinstance(e, Event))
        plain.reset()
        flipped.reset()
        want = [f.to_json() for f in drive(plain, events)]
        assert [f.to_json() for f in drive(flipped, events)] == want, path.name
        raised += len(want)
    assert raised > 100  # the scenarios that fire do raise findings


def test_durable_rules_sees_flat_messages_and_conditions_with_no_nested_path(
    pack: CompiledPack,
) -> None:
    engine = Engine(pack)
    text = repr(engine.host.definitions)
    assert "state." not in text
    assert "event." not in text
    posted = engine.host._posted(
        "pump.infusion_started", {"state": {"drug_running": True}, "event": {}}
    )
    assert all(type(v) is not dict for v in posted.values())
    assert True in posted.values()
