"""The negation of a durable-rules condition part, written as the compiler writes negations.

A rule too large for one durable-rules condition is split into parts (:func:`.host.split`),
and a part that holds for nearly every message fires for nearly every message: a
native call, and a frame built and torn down, each time, that decide nothing new.
Asked the part's negation instead, durable-rules fires only where the part does not
hold. The compiler (:mod:`.expr`) writes the negation of a whole condition; a part is
a piece of the compiled expression, so its negation is built here from the JSON, by
De Morgan's laws and the compiler's own negation of one comparison
(:func:`.expr.negated_test`). The host still checks every negation against
durable-rules' own answers before it asks one (``RuleHost._compare_parts``).
"""

from __future__ import annotations

from typing import Any

from .expr import negated_test

__all__ = ["negate", "negated_part"]

_COMPARISONS = frozenset(("$eq", "$neq", "$lt", "$lte", "$gt", "$gte"))
_ARITHMETIC = frozenset(("$add", "$sub", "$mul", "$div"))
_HAS_TYPE = {"$ex": {"type": 1}}
_NO_TYPE = {"$nex": {"type": 1}}


def negated_part(part: dict[str, Any]) -> dict[str, Any] | None:
    """``$ex type and not (rest)`` for a part ``$ex type and rest``; None if a form in it
    has no negation here (the part is then always asked as it is). The host flattens
    it (:func:`.host.flatten_logic`) before durable-rules is asked it.

    The ``$ex type`` test stays: every message has a type, and without it a part
    could match durable-rules' own session state (see :func:`.host.split`).
    """
    terms = part.get("$and") if len(part) == 1 else None
    if not isinstance(terms, list) or len(terms) < 2 or terms[0] != _HAS_TYPE:
        return None
    rest = terms[1] if len(terms) == 2 else {"$and": terms[1:]}
    negation = negate(rest)
    if negation is None:
        return None
    return {"$and": [_HAS_TYPE, _typed(negation)]}


def _typed(expr: Any) -> Any:
    """``expr`` where the message has a type: each ``$nex type`` alternative dropped (it
    cannot hold), so a negated trigger is one test per type, not a choice of two."""
    if isinstance(expr, list):
        return [_typed(v) for v in expr]
    if not isinstance(expr, dict):
        return expr
    terms = expr.get("$or") if len(expr) == 1 else None
    if isinstance(terms, list):
        kept = [_typed(t) for t in terms if t != _NO_TYPE]
        if kept:
            return kept[0] if len(kept) == 1 else {"$or": kept}
    return {k: _typed(v) for k, v in expr.items()}


def negate(expr: Any) -> dict[str, Any] | None:
    """``not expr`` for the forms the compiler writes (None for any other form)."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((op, body),) = expr.items()
    if op in ("$and", "$or"):
        if not isinstance(body, list) or not body:
            return None
        terms = [negate(term) for term in body]
        if any(term is None for term in terms):
            return None
        return {"$or" if op == "$and" else "$and": terms}
    if op in ("$ex", "$nex"):
        return {"$nex" if op == "$ex" else "$ex": body}
    if op in _COMPARISONS:
        if not isinstance(body, dict) or len(body) != 1:
            return None
        ((prop, rv),) = body.items()
        refs = _reads(rv)
        return None if refs is None else negated_test(op, prop, rv, refs)
    if not op.startswith("$") and _reads(body) == []:  # {prop: constant}: equality
        return negated_test("$eq", op, body, ())
    return None


def _reads(rv: Any) -> list[str] | None:
    """The fields a right-hand side reads, left to right (None: not a form known here)."""
    if isinstance(rv, bool | int | float | str):
        return []
    if not isinstance(rv, dict) or len(rv) != 1:
        return None
    ((op, body),) = rv.items()
    if op == "$m":
        return [body] if isinstance(body, str) else None
    if op in _ARITHMETIC and isinstance(body, dict) and set(body) == {"$l", "$r"}:
        left, right = _reads(body["$l"]), _reads(body["$r"])
        return None if left is None or right is None else left + right
    return None
