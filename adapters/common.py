"""Small pieces every source shares: strict events from mapped values, readable reasons."""

from __future__ import annotations

import contextlib
import enum
import json
import re
from typing import Any

from pumpguard.engine.errors import ParseError
from pumpguard.engine.events import EVENT_TYPES, Event, event_adapter
from pumpguard.engine.gate import QUOTE_LIMIT, describe_validation_error, quote
from pydantic import ValidationError

__all__ = [
    "QUOTE_LIMIT",
    "canonical_json",
    "clip",
    "coerce_enums",
    "describe_invalid",
    "is_fhir_json",
    "json_kind",
    "load_json",
    "load_json_document",
    "lone_surrogate",
    "make_event",
    "quote",
]

_ENUM_FIELDS: dict[tuple[str, str], type[enum.Enum]] = {}
for _type, _model in EVENT_TYPES.items():
    for _name, _field in _model.model_fields.items():
        _ann = _field.annotation
        for _cand in (_ann, *getattr(_ann, "__args__", ())):
            if isinstance(_cand, type) and issubclass(_cand, enum.Enum):
                _ENUM_FIELDS[(_type, _name)] = _cand


def coerce_enums(data: dict[str, Any]) -> dict[str, Any]:
    """Turn enum-valued strings into their enum members (the models are strict).

    Unknown values are left as they are so validation reports them with the
    allowed values, instead of this helper guessing a nearest one.
    """
    etype = data.get("type")
    for key, value in data.items():
        if isinstance(value, str):
            cls = _ENUM_FIELDS.get((etype, key))  # type: ignore[arg-type]
            if cls is not None:
                with contextlib.suppress(ValueError):
                    data[key] = cls(value)
    return data


def make_event(data: dict[str, Any]) -> Event:
    """Validate mapped values as a canonical event (raises pydantic's ValidationError)."""
    event: Event = event_adapter.validate_python(coerce_enums(data))
    return event


def canonical_json(event: Event) -> str:
    """The event as one JSONL line, exactly what the engine reads (no unknown extras)."""
    return event.model_dump_json(exclude_none=True, exclude=set(event.unknown_fields) or None)


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as it is when short, else cut to ``limit`` characters with the full length said."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def describe_invalid(exc: ValidationError) -> str:
    """The gate's sentence for a validation error, quoting at most ~200 characters a value."""
    text = describe_validation_error(exc)
    # A whole-record problem has no field name; the gate then leaves an empty one.
    return text.removeprefix(": ")


def load_json_document(raw: bytes) -> object:
    """A whole file's bytes as one JSON document (UTF-8, a BOM allowed); ParseError if not."""
    try:
        return load_json(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None


def load_json(text: str | bytes) -> object:
    """``json.loads``, with every way it fails turned into a :class:`ParseError`.

    Python's decoder recurses: a document nested 10,000 deep raises
    RecursionError, which is no ``ValueError`` and would otherwise escape.
    """
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise ParseError(msg, position=f"line {exc.lineno}") from None
    except RecursionError:
        raise ParseError("JSON nested too deeply to read (over ~1,000 levels)") from None
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    return obj


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(obj: object) -> str | None:
    """Why a decoded JSON value is damaged text (a lone surrogate in a string), or None.

    Python's decoder accepts ``"\\ud800"`` alone; such a string cannot be written
    as UTF-8 later (a rejects file, the replay's spool), far from its record.
    """
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            hit = _SURROGATE.search(value)
            if hit is not None:
                return (
                    f"a \\u{ord(hit.group()):04x} escape is half a UTF-16 pair (a lone "
                    "surrogate), not a character: the text is damaged"
                )
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's words ("an object", "null"), for a reason."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def is_fhir_json(obj: Any) -> bool:
    """True for a decoded JSON object that is a FHIR resource (here, so that telling a
    format costs no FHIR import)."""
    return isinstance(obj, dict) and isinstance(obj.get("resourceType"), str)
