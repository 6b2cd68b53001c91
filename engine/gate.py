"""The input gate: nothing reaches durable-rules that we have not checked.

durable-rules compares a string with a number as strings, dies on integer
division by zero, truncates long strings and refuses some values with bare
error codes (research note §2). So every message it sees is built here, from a
validated canonical event, with numbers as floats, strings bounded, and a
fixed, small set of properties.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from .errors import GateError

__all__ = [
    "QUOTE_LIMIT",
    "GateError",
    "check_message",
    "describe_validation_error",
    "quote",
    "rule_value",
]

MAX_STRING = 4096
MAX_PROPERTIES = 200


QUOTE_LIMIT = 200
"""At most this many characters of an offending value are quoted in a reason."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters with the full length said.

    A reject reason is read by a person: a 100 KB cell quoted whole buries the
    reason and bloats the rejects file. A time reads as its ISO text.
    """
    if isinstance(value, datetime | date):
        value = value.isoformat()
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return f"{text[:limit]}… ({size} characters)"


def describe_validation_error(exc: ValidationError, text: str | None = None) -> str:
    """One readable sentence per problem, naming the field and the value sent."""
    parts: list[str] = []
    for err in exc.errors(include_url=False):
        kind = err.get("type", "")
        loc = [str(p) for p in err.get("loc", ())]
        if kind == "json_invalid":
            parts.append(f"not valid JSON ({err.get('msg', '').removeprefix('Invalid JSON: ')})")
            continue
        if kind == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            parts.append(f"unknown event type {quote(ctx.get('tag'))}")
            continue
        if kind == "union_tag_not_found":
            parts.append("no 'type' field")
            continue
        if kind == "model_type" or kind == "model_attributes_type":
            parts.append("not a JSON object")
            continue
        field = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
        msg = err.get("msg", "invalid")
        if kind == "missing":
            parts.append(f"{field}: required field missing")
        elif kind == "timezone_aware":
            parts.append(
                f"{field}: timestamp has no UTC offset ({quote(err.get('input'))}); never guessed"
            )
        else:
            parts.append(f"{field}: {msg} (got {quote(err.get('input'))})")
    return "; ".join(parts) or "invalid event"


def rule_value(value: Any) -> Any:
    """A value as durable-rules must see it: integers as floats (it divides integers as C does).

    Every number that reaches a message or a fact passes here: events, derived
    state and facts set by actions alike, so the gate below never finds an int.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def check_message(message: dict[str, Any]) -> dict[str, Any]:
    """Refuse anything durable-rules mishandles; return the message unchanged.

    The engine builds messages itself, so a failure here is an engine bug and is
    raised, never posted. Messages are flat (what the host posts) or two levels
    deep (namespaces of scalars): either shape is checked by type in one pass;
    anything else, or any value in doubt, takes the full walk, which says what
    is wrong.
    """
    verdict = _plain(message.values())
    if verdict is _NAMESPACE:
        return _check_nested(message)
    if verdict is not True or len(message) > MAX_PROPERTIES:
        return _check_deep(message)
    return message


_NAMESPACE = object()
"""What :func:`_plain` says of values holding a dict (a namespace of a message)."""


def _plain(values: Iterable[Any]) -> bool | object:
    """True if every value is one durable-rules takes as it is (a float that is finite,
    a string within bounds, a bool, None); :data:`_NAMESPACE` at the first dict; else
    False (the value is in doubt: the full walk decides and says why)."""
    for v in values:
        kind = type(v)
        if kind is str:
            if len(v) > MAX_STRING:
                return False
        elif kind is float:
            if v - v != 0.0:  # inf or NaN
                return False
        elif kind is dict:
            return _NAMESPACE
        elif kind is not bool and v is not None:
            return False
    return True


def _check_nested(message: dict[str, Any]) -> dict[str, Any]:
    """:func:`check_message` for a message by namespace (two levels of scalars)."""
    count = 0
    for value in message.values():
        inner = value.values() if type(value) is dict else (value,)
        count += len(inner)
        if _plain(inner) is not True:  # a third level, or a value in doubt
            return _check_deep(message)
    if count > MAX_PROPERTIES:
        return _check_deep(message)
    return message


def _check_deep(message: dict[str, Any]) -> dict[str, Any]:
    """The full walk: every leaf at any depth, with a reason for the first one refused."""
    count = 0
    stack: list[Any] = [message]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
            continue
        count += 1
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            msg = f"integer {value} in a durable-rules message (use float)"
            raise GateError(msg)
        if isinstance(value, float):
            if not math.isfinite(value):
                msg = f"non-finite number {value} in a durable-rules message"
                raise GateError(msg)
            continue
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                msg = f"string of {len(value)} characters exceeds {MAX_STRING}"
                raise GateError(msg)
            continue
        msg = f"value of type {type(value).__name__} cannot be posted"
        raise GateError(msg)
    if count > MAX_PROPERTIES:
        msg = f"{count} properties exceed the limit of {MAX_PROPERTIES}"
        raise GateError(msg)
    return message
