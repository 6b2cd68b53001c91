"""The ``when:`` language of rule packs, compiled to durable-rules conditions.

A condition is one expression in a small, Python-shaped language::

    state.interruption_h >= params.reinit_threshold_h and not state.hospitalized

It is parsed with :mod:`ast` (never evaluated), type-checked against the event
models and the derived-state registry, and compiled to a durable-rules
expression dict. ``params.*`` are replaced by the values in force (edition and
site), so a pack's thresholds are data and the engine's code holds none.

Semantics that durable-rules does not give for free, made explicit here:

- A comparison involving an unknown value (an absent field) is false, and
  ``not`` of it is true. durable-rules treats a missing field in arithmetic as
  0 (``x > missing * 1.05`` fires), so every field on the right-hand side is
  guarded with an existence test.
- Numbers are compared with numbers and strings with strings only: durable-rules
  would compare ``"abc" > 1`` as strings.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ExprError

__all__ = [
    "CompiledCondition",
    "ExprError",
    "Kind",
    "Resolver",
    "compile_condition",
    "compile_eval",
    "compile_value",
    "evaluate",
    "expr_refs",
    "negated_test",
    "parse_macros",
    "parse_ref",
]

Kind = Literal["num", "bool", "str", "list"]
NAMESPACES = ("event", "state", "deadline", "facts", "params")
"""Where a name in an expression comes from (``cond.*`` are the pack's named conditions)."""
_FLIP = {"$lt": "$gt", "$lte": "$gte", "$gt": "$lt", "$gte": "$lte", "$eq": "$eq", "$neq": "$neq"}
_NEGATE = {"$lt": "$gte", "$lte": "$gt", "$gt": "$lte", "$gte": "$lt", "$eq": "$neq", "$neq": "$eq"}
_OPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "$lt",
    ast.LtE: "$lte",
    ast.Gt: "$gt",
    ast.GtE: "$gte",
    ast.Eq: "$eq",
    ast.NotEq: "$neq",
}
_ARITH: dict[type[ast.operator], str] = {
    ast.Add: "$add",
    ast.Sub: "$sub",
    ast.Mult: "$mul",
    ast.Div: "$div",
}
_LITERAL_NAMES: dict[str, Any] = {
    "true": True,
    "false": False,
    "none": None,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}

Resolver = Callable[[str, str], Kind]
"""Given (namespace, field), the field's kind; raises ExprError if unknown."""


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """The durable-rules expression plus the fields it reads (for explanations)."""

    source: str
    durable: dict[str, Any] | None
    refs: tuple[str, ...]
    tree: ast.expr
    negated: dict[str, Any] | None
    """The durable-rules expression of ``not (source)``: true exactly where ``durable`` is
    false, unknowns included (the host may ask durable-rules this question instead)."""


def parse_ref(node: ast.expr) -> tuple[str, str] | None:
    """``state.x`` → ("state", "x"); anything else → None."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in NAMESPACES
    ):
        return node.value.id, node.attr
    return None


@dataclass(frozen=True, slots=True)
class _Val:
    """A compiled operand: a field path, a constant, or arithmetic."""

    kind: Kind
    prop: str | None = None  # a plain field: "state.x"
    const: Any = None
    is_const: bool = False
    arith: dict[str, Any] | None = None
    refs: tuple[str, ...] = ()

    def rv(self) -> Any:
        """The right-hand-side form durable-rules expects."""
        if self.is_const:
            return self.const
        if self.prop is not None:
            return {"$m": self.prop}
        return self.arith


class _Compiler:
    def __init__(self, source: str, params: Mapping[str, Any], resolve: Resolver) -> None:
        self.source = source
        self.params = params
        self.resolve = resolve
        self.refs: list[str] = []

    def fail(self, node: ast.AST, why: str) -> ExprError:
        col = getattr(node, "col_offset", 0)
        return ExprError(f"{why} (at column {col + 1} of {self.source!r})")

    # -- operands -----------------------------------------------------------
    def value(self, node: ast.expr) -> _Val:
        ref = parse_ref(node)
        if ref is not None:
            ns, name = ref
            if ns == "params":
                if name not in self.params:
                    raise self.fail(node, f"unknown parameter params.{name}")
                return self.constant(node, self.params[name])
            kind = self.resolve(ns, name)
            path = f"{ns}.{name}"
            self.refs.append(path)
            return _Val(kind=kind, prop=path, refs=(path,))
        if isinstance(node, ast.Constant):
            return self.constant(node, node.value)
        if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
            return self.constant(node, _LITERAL_NAMES[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            if inner.is_const and inner.kind == "num":
                return _Val(kind="num", const=-inner.const, is_const=True)
            raise self.fail(node, "unary minus only applies to numbers")
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.value(e) for e in node.elts]
            if not all(i.is_const for i in items):
                raise self.fail(node, "lists may hold constants only")
            return _Val(kind="list", const=[i.const for i in items], is_const=True)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            left, right = self.value(node.left), self.value(node.right)
            if left.kind != "num" or right.kind != "num":
                raise self.fail(node, "arithmetic needs numbers on both sides")
            if left.is_const and right.is_const:
                return _Val(
                    kind="num", const=_fold(node.op, left.const, right.const), is_const=True
                )
            op = _ARITH[type(node.op)]
            return _Val(
                kind="num",
                arith={op: {"$l": left.rv(), "$r": right.rv()}},
                refs=left.refs + right.refs,
            )
        raise self.fail(node, f"{type(node).__name__} is not allowed in a condition")

    def constant(self, node: ast.AST, value: Any) -> _Val:
        if isinstance(value, bool):
            return _Val(kind="bool", const=value, is_const=True)
        if isinstance(value, int | float):
            return _Val(kind="num", const=float(value), is_const=True)
        if isinstance(value, str):
            return _Val(kind="str", const=value, is_const=True)
        if value is None:
            return _Val(kind="bool", const=None, is_const=True)
        if isinstance(value, list | tuple):
            return _Val(
                kind="list",
                const=[
                    float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value
                ],
                is_const=True,
            )
        raise self.fail(node, f"constant of type {type(value).__name__} is not allowed")

    # -- conditions ---------------------------------------------------------
    def cond(self, node: ast.expr, negate: bool = False) -> dict[str, Any] | None:
        """Compile a boolean node; None means 'always true'."""
        if isinstance(node, ast.BoolOp):
            parts = [self.cond(v, negate) for v in node.values]
            is_and = isinstance(node.op, ast.And) != negate
            if is_and:
                kept = [p for p in parts if p is not None]
                if not kept:
                    return None
                return kept[0] if len(kept) == 1 else {"$and": kept}
            if any(p is None for p in parts):
                return None
            return {"$or": parts}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self.cond(node.operand, not negate)
        if isinstance(node, ast.Compare):
            if len(node.ops) > 1:
                pairs = []
                left = node.left
                for op, right in zip(node.ops, node.comparators, strict=True):
                    pairs.append(ast.Compare(left=left, ops=[op], comparators=[right]))
                    left = right
                return self.cond(ast.BoolOp(op=ast.And(), values=list(pairs)), negate)
            return self.compare(node, node.left, node.ops[0], node.comparators[0], negate)
        ref = parse_ref(node)
        if ref is not None or isinstance(node, ast.Constant | ast.Name):
            val = self.value(node)
            if val.is_const:
                if val.kind != "bool" or val.const is None:
                    raise self.fail(node, "a condition must be true or false")
                return None if (val.const != negate) else {"$and": [{"$nex": {"type": 1}}]}
            if val.kind != "bool":
                raise self.fail(node, f"{val.prop} is not a yes/no field; compare it")
            return self.simple("$eq", val, _Val(kind="bool", const=True, is_const=True), negate)
        raise self.fail(node, f"{type(node).__name__} is not a condition")

    def compare(
        self, node: ast.expr, lnode: ast.expr, op: ast.cmpop, rnode: ast.expr, negate: bool
    ) -> dict[str, Any] | None:
        if isinstance(op, ast.Is | ast.IsNot):
            target = lnode if _is_none(rnode) else rnode if _is_none(lnode) else None
            if target is None:
                raise self.fail(node, "'is' only compares a field with none")
            val = self.value(target)
            if val.prop is None:
                raise self.fail(node, "'is none' needs a field")
            absent = isinstance(op, ast.Is) != negate
            return {"$nex" if absent else "$ex": {val.prop: 1}}
        if isinstance(op, ast.In | ast.NotIn):
            left, right = self.value(lnode), self.value(rnode)
            if left.prop is None or right.kind != "list":
                raise self.fail(node, "'in' needs a field on the left and a list on the right")
            for item in right.const:
                if _kind_of(item) != left.kind:
                    raise self.fail(node, f"{left.prop} ({left.kind}) compared with {item!r}")
            negated = isinstance(op, ast.NotIn) != negate
            if negated:
                alts = [{"$neq": {left.prop: item}} for item in right.const]
                return {"$or": [{"$nex": {left.prop: 1}}, {"$and": alts} if alts else None]}
            if not right.const:
                return {"$and": [{"$nex": {"type": 1}}]}
            alts = [{"$eq": {left.prop: item}} for item in right.const]
            return alts[0] if len(alts) == 1 else {"$or": alts}
        dop = _OPS.get(type(op))
        if dop is None:
            raise self.fail(node, f"operator {type(op).__name__} is not allowed")
        left, right = self.value(lnode), self.value(rnode)
        if left.prop is None and right.prop is not None:
            left, right, dop = right, left, _FLIP[dop]
        if left.prop is None:
            raise self.fail(node, "one side of a comparison must be a plain field")
        if right.is_const and right.const is None:
            raise self.fail(node, "compare with none using 'is none'")
        if left.kind != right.kind or left.kind == "list":
            raise self.fail(node, f"{left.prop} ({left.kind}) compared with a {right.kind}")
        if left.kind != "num" and dop not in ("$eq", "$neq"):
            raise self.fail(node, f"{left.prop} is not a number; only == and != apply")
        return self.simple(dop, left, right, negate)

    def simple(self, dop: str, left: _Val, right: _Val, negate: bool) -> dict[str, Any]:
        assert left.prop is not None
        if negate:
            return negated_test(dop, left.prop, right.rv(), right.refs)
        guards = [{"$ex": {r: 1}} for r in dict.fromkeys(right.refs)]
        test = {dop: {left.prop: right.rv()}}
        return {"$and": [*guards, test]} if guards else test


def negated_test(dop: str, prop: str, rv: Any, refs: Iterable[str]) -> dict[str, Any]:
    """``not (prop dop rv)`` for durable-rules, where ``refs`` are the fields ``rv`` reads.

    durable-rules decides no comparison with an absent field, and the rule does
    not hold then; so its negation holds where any field it reads is absent, and
    otherwise where the opposite comparison does (guarded, as the comparison is).
    """
    refs = tuple(dict.fromkeys(refs))
    guards = [{"$ex": {r: 1}} for r in refs]
    flipped = {_NEGATE[dop]: {prop: rv}}
    unknown = [{"$nex": {r: 1}} for r in dict.fromkeys((prop, *refs))]
    body = {"$and": [*guards, flipped]} if guards else flipped
    return {"$or": [*unknown, body]}


def _fold(op: ast.operator, a: float, b: float) -> float:
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    if b == 0:
        msg = "division by zero in a constant"
        raise ExprError(msg)
    return a / b


def _is_none(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id in ("none", "null", "None")
    )


def _kind_of(value: Any) -> Kind:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "num"
    if isinstance(value, str):
        return "str"
    return "list"


def _strip_none(expr: Any) -> Any:
    """Drop the empty placeholders a comparison with no durable-rules form leaves behind.

    Limits of durable-rules itself (how deep a condition may nest) are the host's
    business (:func:`pumpguard.engine.host.flatten_logic`), not the language's.
    """
    if isinstance(expr, list):
        return [_strip_none(v) for v in expr if v is not None]
    if isinstance(expr, dict):
        return {k: _strip_none(v) for k, v in expr.items()}
    return expr


def _parse(source: str) -> tuple[str, ast.expr]:
    text = " ".join(source.split())
    try:
        return text, ast.parse(text or "true", mode="eval").body
    except SyntaxError as exc:
        msg = f"not a valid expression: {exc.msg} (at column {exc.offset} of {text!r})"
        raise ExprError(msg) from None


class _Expand(ast.NodeTransformer):
    """Replace ``cond.name`` with the named condition's tree (pack-level macros)."""

    def __init__(self, macros: Mapping[str, ast.expr], depth: int = 0) -> None:
        self.macros = macros
        self.depth = depth

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id == "cond":
            if node.attr not in self.macros:
                raise ExprError(f"unknown condition cond.{node.attr}")
            if self.depth > 8:
                raise ExprError(f"conditions nest too deeply at cond.{node.attr}")
            inner = copy.deepcopy(self.macros[node.attr])
            expanded: ast.AST = _Expand(self.macros, self.depth + 1).visit(inner)
            return expanded
        return self.generic_visit(node)


def parse_macros(sources: Mapping[str, str]) -> dict[str, ast.expr]:
    """Parse the pack's named conditions, checking that each one expands."""
    parsed = {name: _parse(src)[1] for name, src in sources.items()}
    for name in parsed:
        try:
            _Expand(parsed).visit(copy.deepcopy(parsed[name]))
        except ExprError as exc:
            raise ExprError(f"cond.{name}: {exc}") from None
    return parsed


def compile_value(
    source: str,
    params: Mapping[str, Any],
    resolve: Resolver,
    kind: Kind,
    macros: Mapping[str, ast.expr] | None = None,
) -> ast.expr:
    """Check a value expression (a deadline's hours, a fact's new value) for the kind it must have.

    Values are computed by :func:`evaluate` when the action runs; only
    conditions are decided by durable-rules.
    """
    _text, tree = _parse(source)
    if macros:
        tree = _Expand(macros).visit(tree)
    comp = _Compiler(source, params, resolve)
    val = comp.value(tree)
    if val.kind != kind:
        raise ExprError(f"{source!r} gives a {val.kind}, expected a {kind}")
    inlined: ast.expr = _ParamsInliner(params).visit(tree)
    return inlined


class _ParamsInliner(ast.NodeTransformer):
    """Turn ``params.x`` into constants so evaluation needs no parameter table."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        ref = parse_ref(node)
        if ref is not None and ref[0] == "params":
            return ast.copy_location(ast.Constant(self.params[ref[1]]), node)
        return self.generic_visit(node)


def compile_condition(
    source: str,
    params: Mapping[str, Any],
    resolve: Resolver,
    macros: Mapping[str, ast.expr] | None = None,
) -> CompiledCondition:
    """Parse, check and compile one ``when:`` expression."""
    text, tree = _parse(source)
    if macros:
        tree = _Expand(macros).visit(tree)
    comp = _Compiler(text, params, resolve)
    durable = _strip_none(comp.cond(tree))
    refs = tuple(dict.fromkeys(comp.refs))
    negated = _strip_none(comp.cond(tree, negate=True))
    return CompiledCondition(
        source=text,
        durable=durable,
        refs=refs,
        tree=_ParamsInliner(params).visit(tree),
        negated=negated,
    )


def expr_refs(tree: ast.expr) -> set[str]:
    """Every ``ns.name`` an expression reads (what the engine must put in its view)."""
    refs: set[str] = set()
    for node in ast.walk(tree):
        ref = parse_ref(node) if isinstance(node, ast.expr) else None
        if ref is not None:
            refs.add(f"{ref[0]}.{ref[1]}")
    return refs


# -- a Python evaluator of the same language, for explanations --------------


def evaluate(tree: ast.expr, env: Mapping[str, Mapping[str, Any]]) -> Any:
    """Evaluate a checked condition against a message, with the same unknown rules.

    Used for explanations and near misses, and for the value expressions of
    actions (a deadline's hours, a fact's new value); never for a rule's
    condition: durable-rules decides those.
    Returns True, False or None (unknown).
    """
    if isinstance(tree, ast.BoolOp):
        vals = [evaluate(v, env) for v in tree.values]
        if isinstance(tree.op, ast.And):
            return all(v is True for v in vals)
        return any(v is True for v in vals)
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.Not):
        return evaluate(tree.operand, env) is not True
    if isinstance(tree, ast.UnaryOp) and isinstance(tree.op, ast.USub):
        v = evaluate(tree.operand, env)
        return None if v is None else -v
    if isinstance(tree, ast.Compare):
        left = evaluate(tree.left, env)
        for op, comp in zip(tree.ops, tree.comparators, strict=True):
            right = evaluate(comp, env)
            if isinstance(op, ast.Is):
                ok = left is None
            elif isinstance(op, ast.IsNot):
                ok = left is not None
            elif left is None or right is None:
                ok = isinstance(op, ast.NotIn) and left is None
            elif isinstance(op, ast.In):
                ok = left in right
            elif isinstance(op, ast.NotIn):
                ok = left not in right
            else:
                ok = _PY_CMP[type(op)](left, right)
            if not ok:
                return False
            left = right
        return True
    if isinstance(tree, ast.BinOp):
        a, b = evaluate(tree.left, env), evaluate(tree.right, env)
        if a is None or b is None:
            return None
        return _fold(tree.op, a, b) if not (isinstance(tree.op, ast.Div) and b == 0) else None
    ref = parse_ref(tree)
    if ref is not None:
        return env.get(ref[0], {}).get(ref[1])
    if isinstance(tree, ast.Constant):
        return tree.value
    if isinstance(tree, ast.Name) and tree.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[tree.id]
    if isinstance(tree, ast.List | ast.Tuple):
        return [evaluate(e, env) for e in tree.elts]
    return None


Evaluator = Callable[[Mapping[str, Mapping[str, Any]]], Any]
"""An expression compiled once: the value :func:`evaluate` gives, without walking the tree."""


def compile_eval(tree: ast.expr) -> Evaluator:
    """``lambda env: evaluate(tree, env)``, as closures for the shapes actions use.

    Arithmetic, fields and constants (a deadline's hours, a fact's value) are
    compiled; constant parts are folded once; any other shape is evaluated as
    before, by :func:`evaluate` itself.
    """
    if isinstance(tree, ast.Constant | ast.Name) or (
        isinstance(tree, ast.BinOp) and not expr_refs(tree)
    ):
        try:
            value = evaluate(tree, {})
        except Exception:  # an error stays where it was: when the action runs
            return lambda env: evaluate(tree, env)
        return lambda _env: value
    ref = parse_ref(tree)
    if ref is not None:
        ns, name = ref

        def field(env: Mapping[str, Mapping[str, Any]]) -> Any:
            return env.get(ns, {}).get(name)

        return field
    if isinstance(tree, ast.BinOp) and type(tree.op) in _ARITH:
        left, right, op = compile_eval(tree.left), compile_eval(tree.right), tree.op
        divides = isinstance(op, ast.Div)

        def arith(env: Mapping[str, Mapping[str, Any]]) -> Any:
            a, b = left(env), right(env)
            if a is None or b is None:
                return None
            return None if divides and b == 0 else _fold(op, a, b)

        return arith
    return lambda env: evaluate(tree, env)


_PY_CMP: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}
