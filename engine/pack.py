"""Rule packs: YAML files validated by a schema and compiled for durable-rules.

A pack is a folder: ``pack.yaml`` (name, version, requirements, codes,
parameters, editions, declared facts) and rule files. Every threshold is a
parameter; an edition or a site file overrides parameters, never rules. Errors
name the file and line, so a pharmacist editing YAML can find the mistake.

Actions are a closed set of verbs: ``raise`` a finding, ``open_deadline``,
``close_deadline``, ``set`` a fact. Nothing in a pack names Python code.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import RulePackError
from .events import EVENT_TYPES
from .expr import (
    CompiledCondition,
    ExprError,
    Kind,
    Resolver,
    compile_condition,
    compile_value,
    parse_macros,
)
from .findings import RulePackRef, Severity
from .state import StateConfig, state_fields
from .template import FILTERS, placeholders

__all__ = [
    "CompiledPack",
    "CompiledRule",
    "DeadlineAction",
    "PackSpec",
    "RaiseAction",
    "RuleSpec",
    "SetAction",
    "load_pack",
]

ENGINE_PARAMETERS = (
    "drug_names",
    "hospital_settings",
    "professional_roles",
    "new_cycle_gap_h",
    "premedication_drugs",
    "premedication_window_h",
)
"""Parameters the derived state needs; a pack must define them."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    value: Any
    unit: str | None = None
    doc: str = ""


class CodeSpec(_Strict):
    severity: Severity
    meaning: str = ""


class EditionSpec(_Strict):
    title: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class FactSpec(_Strict):
    kind: Literal["num", "bool", "str"]
    doc: str = ""


class RaiseAction(_Strict):
    code: str
    severity: Severity | None = None
    message: str
    action: str


class DeadlineAction(_Strict):
    """Open a deadline ``after_h`` from now.

    ``at_due`` says what happens to events at exactly the due time: by default
    they are applied first (a window "within 1 h" includes its end); with
    ``before_events`` the deadline fires first (a state that must last "at least
    72 h" has lasted long enough at 72 h).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    after_h: float | str
    carry: dict[str, str] = Field(default_factory=dict)
    at_due: Literal["after_events", "before_events"] = "after_events"


class SetAction(_Strict):
    """Set a fact to a constant (``value``) or to an expression's value (``expr``)."""

    fact: str
    value: float | bool | str | None = None
    expr: str | None = None


class NearMissSpec(_Strict):
    """When a rule did not fire but came close, and how to say so."""

    when: str
    message: str


class ActionSpec(_Strict):
    """One verb. ``end_episode: G`` ends the open episode of finding group ``G``.

    A state finding (``once_per``) is raised once per episode: again only when
    its key changes, or after its episode ended. An episode ends when a rule
    with ``end_episode`` matches an event and no rule of that group matched the
    same event, i.e. the state was seen and it was right.
    """

    raise_: RaiseAction | None = Field(default=None, alias="raise")
    open_deadline: DeadlineAction | None = None
    close_deadline: str | None = None
    set: SetAction | None = None
    end_episode: str | None = None

    @model_validator(mode="after")
    def _one_verb(self) -> ActionSpec:
        verbs = ("raise_", "open_deadline", "close_deadline", "set", "end_episode")
        chosen = [k for k in verbs if getattr(self, k)]
        if len(chosen) != 1:
            msg = (
                "each action has exactly one verb: raise, open_deadline, close_deadline, "
                "set or end_episode"
            )
            raise ValueError(msg)
        return self


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9-]+$")
    requirement: str
    title: str
    citation: str
    on: list[str] = Field(min_length=1)
    when: str = "true"
    then: list[ActionSpec] = Field(min_length=1)
    once_per: str | list[str] | None = None
    once_group: str | None = None
    editions: list[str] | None = None
    modes: list[Literal["replay", "live", "drill"]] | None = None
    near_miss: NearMissSpec | None = None

    @property
    def once_keys(self) -> tuple[str, ...]:
        if self.once_per is None:
            return ()
        return (self.once_per,) if isinstance(self.once_per, str) else tuple(self.once_per)


class PackSpec(_Strict):
    name: str
    version: str
    title: str = ""
    source: str = ""
    default_edition: str
    requirements: dict[str, str]
    codes: dict[str, CodeSpec]
    parameters: dict[str, ParamSpec]
    editions: dict[str, EditionSpec]
    facts: dict[str, FactSpec] = Field(default_factory=dict)
    conditions: dict[str, str] = Field(default_factory=dict)
    rule_files: list[str] = Field(min_length=1)


class SiteSpec(_Strict):
    site: str
    parameters: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: its condition for durable-rules and its actions."""

    spec: RuleSpec
    location: str
    condition: CompiledCondition
    actions: tuple[ActionSpec, ...]
    values: tuple[ast.expr | None, ...]
    near_miss: CompiledCondition | None

    @property
    def id(self) -> str:
        return self.spec.id


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

    def rules_for(self, event_type: str) -> list[CompiledRule]:
        return [r for r in self.rules if event_type in r.spec.on]


# -- loading -------------------------------------------------------------------


class _PackLoader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans: ``on:`` stays a key, ``no`` a string."""


_PackLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PackLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _load_yaml(path: Path) -> tuple[Any, dict[int, int]]:
    """The document, and the line of each item of its top-level ``rules`` list."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror}"
        raise RulePackError(msg, source=str(path)) from exc
    try:
        node = yaml.compose(text, Loader=_PackLoader)
        data = yaml.load(text, Loader=_PackLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        msg = f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
        raise RulePackError(msg, source=str(path)) from exc
    lines: dict[int, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                lines = {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return data, lines


def _schema_error(where: str, exc: ValidationError) -> RulePackError:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return RulePackError(f"{where}: " + "; ".join(parts), source=where)


def _event_kind(annotation: Any) -> Kind | None:
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


def _event_fields(types: list[str]) -> dict[str, Kind]:
    found: dict[str, Kind] = {}
    for t in types:
        model = EVENT_TYPES.get(t)
        if model is None:
            continue
        for name, info in model.model_fields.items():
            if name in ("ts",):
                continue
            kind = _event_kind(info.annotation)
            if kind is not None:
                found[name] = kind
    return found


def load_pack(
    path: str | Path,
    *,
    edition: str | None = None,
    site_file: str | Path | None = None,
) -> CompiledPack:
    """Load, validate and compile a pack folder (or its ``pack.yaml``)."""
    root = Path(path)
    pack_file = root if root.is_file() else root / "pack.yaml"
    root = pack_file.parent
    data, _ = _load_yaml(pack_file)
    try:
        spec = PackSpec.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(str(pack_file), exc) from None

    digest = hashlib.sha256()
    digest.update(pack_file.read_bytes())
    chosen = edition or spec.default_edition
    if chosen not in spec.editions:
        known = ", ".join(sorted(spec.editions))
        msg = f"unknown edition {chosen!r} for pack {spec.name} (known: {known})"
        raise RulePackError(msg, source=str(pack_file))
    missing = [p for p in ENGINE_PARAMETERS if p not in spec.parameters]
    if missing:
        msg = f"{pack_file}: parameters the engine needs are missing: {', '.join(missing)}"
        raise RulePackError(msg, source=str(pack_file))
    for code in spec.codes:
        if not code.replace("_", "").isalnum() or not code.isupper():
            msg = f"{pack_file}: code {code!r} must be UPPER_SNAKE_CASE"
            raise RulePackError(msg, source=str(pack_file))

    params: dict[str, Any] = {k: v.value for k, v in spec.parameters.items()}
    _override(params, spec.editions[chosen].parameters, f"{pack_file}: edition {chosen}")
    site_name = None
    if site_file is not None:
        site_path = Path(site_file)
        site_data, _ = _load_yaml(site_path)
        try:
            site = SiteSpec.model_validate(site_data)
        except ValidationError as exc:
            raise _schema_error(str(site_path), exc) from None
        _override(params, site.parameters, str(site_path))
        site_name = site.site

    cfg = StateConfig.from_params(params)
    fields = state_fields(list(cfg.premed_drugs))
    specs: list[tuple[RuleSpec, str]] = []
    for name in spec.rule_files:
        rule_path = root / name
        digest.update(b"\x00" + name.encode() + b"\x00")
        digest.update(rule_path.read_bytes() if rule_path.is_file() else b"")
        rdata, lines = _load_yaml(rule_path)
        items = (rdata or {}).get("rules") if isinstance(rdata, dict) else None
        if not isinstance(items, list):
            msg = f"{rule_path}: expected a top-level 'rules:' list"
            raise RulePackError(msg, source=str(rule_path))
        for i, item in enumerate(items):
            where = f"{rule_path}:{lines.get(i, 1)}"
            try:
                specs.append((RuleSpec.model_validate(item), where))
            except ValidationError as exc:
                raise _schema_error(where, exc) from None

    carried = _deadline_carry(specs)
    try:
        macros = parse_macros(spec.conditions)
    except ExprError as exc:
        msg = f"{pack_file}: conditions: {exc}"
        raise RulePackError(msg, source=str(pack_file)) from None
    compiled: list[CompiledRule] = []
    seen: set[str] = set()
    for rule, where in specs:
        if rule.id in seen:
            msg = f"{where}: duplicate rule id {rule.id}"
            raise RulePackError(msg, source=where)
        seen.add(rule.id)
        if rule.editions is not None and chosen not in rule.editions:
            _check_editions(rule, spec, where)
            continue
        compiled.append(_compile_rule(rule, where, spec, params, fields, carried, macros))
    _check_episodes(specs)

    in_force = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    ref = RulePackRef(
        name=spec.name,
        version=spec.version,
        sha256=digest.hexdigest(),
        edition=chosen,
        parameters_sha256=hashlib.sha256(in_force).hexdigest(),
        site=site_name,
    )
    return CompiledPack(
        spec=spec,
        edition=chosen,
        site=site_name,
        params=params,
        rules=tuple(compiled),
        ref=ref,
        state_config=cfg,
        path=root,
    )


def _override(params: dict[str, Any], new: Mapping[str, Any], where: str) -> None:
    for key, value in new.items():
        if key not in params:
            msg = f"{where}: unknown parameter {key!r}"
            raise RulePackError(msg, source=where)
        old = params[key]
        numeric = (int, float)
        same = (
            isinstance(value, numeric) and isinstance(old, numeric)
            if not isinstance(old, bool)
            else isinstance(value, bool)
        ) or type(value) is type(old)
        if not same:
            msg = f"{where}: parameter {key!r} must be {type(old).__name__}, got {value!r}"
            raise RulePackError(msg, source=where)
        params[key] = value


def _check_episodes(specs: list[tuple[RuleSpec, str]]) -> None:
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


def _check_editions(rule: RuleSpec, spec: PackSpec, where: str) -> None:
    for e in rule.editions or ():
        if e not in spec.editions:
            msg = f"{where}: rule {rule.id}: unknown edition {e!r}"
            raise RulePackError(msg, source=where)


def _deadline_carry(
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


def _compile_rule(
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

    _check_editions(rule, spec, where)
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
    event_fields = _event_fields(rule.on)

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
                        kinds = _event_fields(list(opener_on))
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

    values: list[ast.expr | None] = []
    for action in rule.then:
        values.append(None)
        if action.raise_ is not None:
            code = action.raise_.code
            if code not in spec.codes:
                raise fail(f"raises unknown code {code!r} (declare it under codes:)")
            try:
                _check_template(action.raise_.message, params, resolve)
                _check_template(action.raise_.action, params, resolve)
            except ExprError as exc:
                raise fail(f"message placeholder: {exc}") from None
        elif action.open_deadline is not None:
            try:
                after = str(action.open_deadline.after_h)
                values[-1] = compile_value(after, params, resolve, "num", macros)
                for ref in action.open_deadline.carry.values():
                    ns, _, name = ref.partition(".")
                    resolve(ns, name)
            except ExprError as exc:
                raise fail(f"open_deadline: {exc}") from None
        elif action.close_deadline is not None:
            if action.close_deadline not in carried:
                raise fail(f"closes deadline {action.close_deadline!r} that no rule opens")
        elif action.set is not None:
            if action.set.fact not in spec.facts:
                raise fail(f"sets undeclared fact {action.set.fact!r}")
            if action.set.expr is not None:
                kind = spec.facts[action.set.fact].kind
                try:
                    values[-1] = compile_value(action.set.expr, params, resolve, kind, macros)
                except ExprError as exc:
                    raise fail(f"set {action.set.fact}: {exc}") from None
    return CompiledRule(
        spec=rule,
        location=where,
        condition=condition,
        actions=tuple(rule.then),
        values=tuple(values),
        near_miss=near,
    )


def _check_template(text: str, params: Mapping[str, Any], resolve: Resolver) -> None:
    for ns, name, filt in placeholders(text):
        if filt is not None and filt not in FILTERS:
            raise ExprError(f"unknown filter |{filt} in {text!r}")
        if ns == "params":
            if name not in params:
                raise ExprError(f"unknown parameter params.{name}")
        else:
            resolve(ns, name)
