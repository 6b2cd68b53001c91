"""Loading a pack folder: YAML with file and line in every error, editions and site files.

Every threshold is a parameter; an edition or a site file overrides
parameters, never rules. Errors name the file and line, so a pharmacist
editing YAML can find the mistake.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .compiler import (
    CompiledPack,
    CompiledRule,
    check_editions,
    check_episodes,
    compile_rule,
    deadline_carry,
)
from .errors import ExprError, RulePackError
from .expr import Kind, parse_macros
from .findings import RulePackRef
from .schema import PackSpec, RuleSpec, SiteSpec
from .state import StateConfig, state_fields

__all__ = ["ENGINE_PARAMETERS", "load_pack"]

ENGINE_PARAMETERS = (
    "drug_names",
    "hospital_settings",
    "professional_roles",
    "new_cycle_gap_h",
    "premedication_drugs",
    "premedication_window_h",
)
"""Parameters the derived state needs; a pack must define them."""


# -- loading -------------------------------------------------------------------


def pack_loader(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """``base`` where only true/false are booleans: ``on:`` stays a key, ``no`` a string."""

    class PackLoader(base):  # type: ignore[valid-type,misc]
        pass

    loader: type[yaml.SafeLoader] = PackLoader
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    return loader


_PackLoader = pack_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))
"""On libyaml's parser when PyYAML has it: a pack loads about four times quicker (every
command and every service start loads one), to the same data as the pure-Python parser.
A file it refuses is parsed again by the pure-Python one, whose messages say more."""

_PurePackLoader = pack_loader(yaml.SafeLoader)


def _detailed(text: str, loader_class: type[yaml.SafeLoader]) -> yaml.YAMLError | None:
    """The pure-Python parser's error for text libyaml refused (its messages name the tab
    or the alias); None when that is the parser that refused it, or it reads the text."""
    if loader_class is _PurePackLoader:
        return None
    try:
        _parse(text, _PurePackLoader)
    except yaml.YAMLError as exc:
        return exc
    return None


def _parse(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    """One parse gives both the nodes (for line numbers) and the data."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def _load_yaml(
    path: Path, loader_class: type[yaml.SafeLoader] = _PackLoader
) -> tuple[Any, dict[int, int]]:
    """The document, and the line of each item of its top-level ``rules`` list."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror}"
        raise RulePackError(msg, source=str(path)) from exc
    try:
        node, data = _parse(text, loader_class)
    except yaml.YAMLError as first:
        error = _detailed(text, loader_class) or first
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        msg = f"{where}: not valid YAML: {getattr(error, 'problem', error)}"
        raise RulePackError(msg, source=str(path)) from error
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
    _check_pack(spec, chosen, pack_file)
    params, site_name = _parameters(spec, chosen, pack_file, site_file)
    cfg = StateConfig.from_params(params)
    fields = state_fields(list(cfg.premed_drugs))
    specs = _read_rules(root, spec, digest)
    compiled = _compile_rules(specs, spec, chosen, params, fields, pack_file)

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


def _check_pack(spec: PackSpec, chosen: str, pack_file: Path) -> None:
    """Refuse an unknown edition, missing engine parameters, or a badly spelt code."""
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


def _parameters(
    spec: PackSpec, chosen: str, pack_file: Path, site_file: str | Path | None
) -> tuple[dict[str, Any], str | None]:
    """Parameters in force: the pack's, then the edition's, then the site's (and its name)."""
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
    return params, site_name


def _read_rules(root: Path, spec: PackSpec, digest: Any) -> list[tuple[RuleSpec, str]]:
    """Every rule in the pack's rule files, with where it was written; each feeds the digest."""
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
    return specs


def _compile_rules(
    specs: list[tuple[RuleSpec, str]],
    spec: PackSpec,
    chosen: str,
    params: dict[str, Any],
    fields: Mapping[str, tuple[Kind, str]],
    pack_file: Path,
) -> list[CompiledRule]:
    """Compile the rules of the chosen edition; refuse duplicate ids and bad episodes."""
    carried = deadline_carry(specs)
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
            check_editions(rule, spec, where)
            continue
        compiled.append(compile_rule(rule, where, spec, params, fields, carried, macros))
    check_episodes(specs)
    return compiled


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
