"""Compiling a validated pack: every rule type-checked and turned into a CompiledRule.

Conditions are compiled by :mod:`.expr` against the event models, the derived
state registry, the declared facts and what each deadline carries, so a typo
in a pack fails at load time with its file and line, never at 3 a.m.
"""

from __future__ import annotations

import ast
import pickle
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from .errors import ExprError, RulePackError
from .events import EVENT_TYPES
from .expr import CompiledCondition, Kind, Resolver, compile_condition, compile_value
from .findings import RulePackRef
from .schema import ActionSpec, DeadlineAction, PackSpec, RaiseAction, RuleSpec
from .state import StateConfig
from .template import FILTERS, placeholders

__all__ = [
    "CloseDeadline",
    "CompiledAction",
    "CompiledPack",
    "CompiledRule",
    "EndEpisode",
    "OpenDeadline",
    "RaiseFinding",
    "SetFact",
    "check_editions",
    "check_episodes",
    "compile_rule",
    "deadline_carry",
    "event_field_kind",
    "event_fields_of",
]


@dataclass(frozen=True, slots=True)
class RaiseFinding:
    """``raise``: a finding worded from the pack's templates."""

    spec: RaiseAction


@dataclass(frozen=True, slots=True)
class OpenDeadline:
    """``open_deadline``: due ``after_h`` hours from now (a compiled number expression)."""

    spec: DeadlineAction
    after_h: ast.expr


@dataclass(frozen=True, slots=True)
class CloseDeadline:
    name: str


@dataclass(frozen=True, slots=True)
class SetFact:
    """``set``: a fact to a constant, or to an expression's value when ``expr`` is given."""

    fact: str
    value: float | bool | str | None
    expr: ast.expr | None


@dataclass(frozen=True, slots=True)
class EndEpisode:
    group: str


CompiledAction = RaiseFinding | OpenDeadline | CloseDeadline | SetFact | EndEpisode
"""One verb of a rule, compiled: what :mod:`.actions` carries out."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: its condition for durable-rules and its compiled steps."""

    spec: RuleSpec
    location: str
    condition: CompiledCondition
    steps: tuple[CompiledAction, ...]
    near_miss: CompiledCondition | None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def actions(self) -> tuple[ActionSpec, ...]:
        """The actions as the pack declares them (for listing codes, deadlines...)."""
        return tuple(self.spec.then)


@dataclass(frozen=True, slots=True)
class CompiledPack:
    """A pack with one edition and the site parameters applied."""

    spec: PackSpec
    edition: str
    site: str | None
    params: Mapping[str, Any]
    rules: tuple[CompiledRule, ...]
    ref: RulePackRef
    state_config: StateConfig
    path: Path

    def __reduce__(self) -> tuple[_Unpickle, tuple[_PackKey, bytes]]:
        """Pickle once, unpickle once per process: a partitioned replay sends the pack with
        every task, and unpickling it costs about 40 ms, so a worker that already holds
        this pack (same file, edition, parameters, site) takes its own copy instead."""
        key = _pack_key(self)
        blob = _PACK_BLOBS.get(key)
        if blob is None:
            state = tuple(getattr(self, f.name) for f in fields(self))
            blob = _PACK_BLOBS[key] = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        return _unpickle_pack, (key, blob)


_PackKey = tuple[str, str, str | None, str | None, str]
_Unpickle = Callable[[_PackKey, bytes], "CompiledPack"]

_PACK_BLOBS: dict[_PackKey, bytes] = {}
"""This process's pickled packs (the sending side)."""

_PACKS: dict[_PackKey, CompiledPack] = {}
"""This process's unpickled packs (the receiving side)."""


def _pack_key(pack: CompiledPack) -> _PackKey:
    ref = pack.ref
    return (ref.sha256, ref.edition, ref.parameters_sha256, ref.site, str(pack.path))


def _unpickle_pack(key: _PackKey, blob: bytes) -> CompiledPack:
    pack = _PACKS.get(key)
    if pack is None:
        pack = _PACKS[key] = CompiledPack(*pickle.loads(blob))
    return pack


def event_field_kind(annotation: Any) -> Kind | None:
    """The expression kind of an event model field, or None if rules cannot read it."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    for arg in typing.get_args(annotation) if union else (annotation,):
        if arg is type(None):
            continue
        if typing.get_origin(arg) is typing.Annotated:
            arg = typing.get_args(arg)[0]
        if arg is bool:
            return "bool"
        if arg in (float, int):
            return "num"
        if typing.get_origin(arg) is Literal:
            values = typing.get_args(arg)
            return "num" if all(isinstance(v, int) for v in values) else "str"
        if isinstance(arg, type) and issubclass(arg, str):
            return "str"
    return None


def event_fields_of(types: list[str]) -> dict[str, Kind]:
    found: dict[str, Kind] = {}
    for t in types:
        model = EVENT_TYPES.get(t)
        if model is None:
            continue
        for name, info in model.model_fields.items():
            if name in ("ts",):
                continue
            kind = event_field_kind(info.annotation)
            if kind is not None:
                found[name] = kind
    return found


def check_episodes(specs: list[tuple[RuleSpec, str]]) -> None:
    """Every ``end_episode`` names a finding group some rule raises once per episode."""
    groups = {r.once_group or r.id for r, _ in specs if r.once_keys}
    for rule, where in specs:
        for action in rule.then:
            if action.end_episode is not None and action.end_episode not in groups:
                msg = (
                    f"{where}: rule {rule.id}: ends episode {action.end_episode!r}, "
                    "which no rule with once_per raises"
                )
                raise RulePackError(msg, source=where)


def check_editions(rule: RuleSpec, spec: PackSpec, where: str) -> None:
    for e in rule.editions or ():
        if e not in spec.editions:
            msg = f"{where}: rule {rule.id}: unknown edition {e!r}"
            raise RulePackError(msg, source=where)


def deadline_carry(
    specs: list[tuple[RuleSpec, str]],
) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    """For each deadline name: carried key -> (source reference, the opener's event types)."""
    carried: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    for rule, _ in specs:
        for action in rule.then:
            if action.open_deadline is not None:
                keys = carried.setdefault(action.open_deadline.name, {})
                for key, ref in action.open_deadline.carry.items():
                    keys[key] = (ref, tuple(rule.on))
    return carried


def compile_rule(
    rule: RuleSpec,
    where: str,
    spec: PackSpec,
    params: Mapping[str, Any],
    fields: Mapping[str, tuple[Kind, str]],
    carried: Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]],
    macros: Mapping[str, ast.expr],
) -> CompiledRule:
    def fail(why: str) -> RulePackError:
        return RulePackError(f"{where}: rule {rule.id}: {why}", source=where)

    check_editions(rule, spec, where)
    if rule.requirement not in spec.requirements:
        raise fail(f"unknown requirement {rule.requirement!r}")
    deadline_names: list[str] = []
    for t in rule.on:
        if t.startswith("deadline."):
            name = t.removeprefix("deadline.")
            if name not in carried:
                raise fail(f"'on: {t}' but no rule opens a deadline named {name!r}")
            deadline_names.append(name)
        elif t not in EVENT_TYPES:
            raise fail(f"'on: {t}' is not a canonical event type")
    event_fields = event_fields_of(rule.on)

    def resolve(ns: str, name: str) -> Kind:
        if ns == "event":
            if name == "type":
                return "str"
            if name not in event_fields:
                raise ExprError(f"event.{name} is not a field of {', '.join(rule.on)}")
            return event_fields[name]
        if ns == "state":
            if name not in fields:
                raise ExprError(f"state.{name} is not a derived state field")
            return fields[name][0]
        if ns == "facts":
            if name not in spec.facts:
                raise ExprError(f"facts.{name} is not declared in the pack's facts")
            return spec.facts[name].kind
        if ns == "deadline":
            for d in deadline_names:
                if name in carried[d]:
                    ref, opener_on = carried[d][name]
                    src_ns, _, src_name = ref.partition(".")
                    if src_ns == "event":
                        kinds = event_fields_of(list(opener_on))
                        if src_name in kinds:
                            return kinds[src_name]
                    elif src_ns == "state" and src_name in fields:
                        return fields[src_name][0]
                    elif src_ns == "facts" and src_name in spec.facts:
                        return spec.facts[src_name].kind
                    raise ExprError(f"deadline.{name} carries {ref}, which is not a known field")
            raise ExprError(f"deadline.{name} is not carried by the deadline this rule is on")
        raise ExprError(f"unknown namespace {ns}")

    try:
        condition = compile_condition(rule.when, params, resolve, macros)
        near = None
        if rule.near_miss is not None:
            near = compile_condition(rule.near_miss.when, params, resolve, macros)
            _check_template(rule.near_miss.message, params, resolve)
        for key in rule.once_keys:
            if key == "patient":  # once per patient: a constant key
                continue
            ns, _, name = key.partition(".")
            resolve(ns, name)
    except ExprError as exc:
        raise fail(str(exc)) from None

    steps = tuple(_compile_step(a, spec, params, resolve, carried, macros, fail) for a in rule.then)
    return CompiledRule(spec=rule, location=where, condition=condition, steps=steps, near_miss=near)


def _compile_step(
    action: ActionSpec,
    spec: PackSpec,
    params: Mapping[str, Any],
    resolve: Resolver,
    carried: Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]],
    macros: Mapping[str, ast.expr],
    fail: Callable[[str], RulePackError],
) -> CompiledAction:
    """One declared action, checked against the pack and compiled."""
    if action.raise_ is not None:
        code = action.raise_.code
        if code not in spec.codes:
            raise fail(f"raises unknown code {code!r} (declare it under codes:)")
        try:
            _check_template(action.raise_.message, params, resolve)
            _check_template(action.raise_.action, params, resolve)
        except ExprError as exc:
            raise fail(f"message placeholder: {exc}") from None
        return RaiseFinding(action.raise_)
    if action.open_deadline is not None:
        try:
            after = compile_value(str(action.open_deadline.after_h), params, resolve, "num", macros)
            for ref in action.open_deadline.carry.values():
                ns, _, name = ref.partition(".")
                resolve(ns, name)
        except ExprError as exc:
            raise fail(f"open_deadline: {exc}") from None
        return OpenDeadline(action.open_deadline, after)
    if action.close_deadline is not None:
        if action.close_deadline not in carried:
            raise fail(f"closes deadline {action.close_deadline!r} that no rule opens")
        return CloseDeadline(action.close_deadline)
    if action.set is not None:
        if action.set.fact not in spec.facts:
            raise fail(f"sets undeclared fact {action.set.fact!r}")
        expr = None
        if action.set.expr is not None:
            kind = spec.facts[action.set.fact].kind
            try:
                expr = compile_value(action.set.expr, params, resolve, kind, macros)
            except ExprError as exc:
                raise fail(f"set {action.set.fact}: {exc}") from None
        return SetFact(action.set.fact, action.set.value, expr)
    assert action.end_episode is not None  # the schema allows exactly one verb
    return EndEpisode(action.end_episode)


def _check_template(text: str, params: Mapping[str, Any], resolve: Resolver) -> None:
    for ns, name, filt in placeholders(text):
        if filt is not None and filt not in FILTERS:
            raise ExprError(f"unknown filter |{filt} in {text!r}")
        if ns == "params":
            if name not in params:
                raise ExprError(f"unknown parameter params.{name}")
        else:
            resolve(ns, name)
