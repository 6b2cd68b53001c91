"""Small pieces every source shares: building a strict event from mapped values."""

from __future__ import annotations

import contextlib
import enum
from typing import Any

from pumpguard.engine.events import EVENT_TYPES, Event, event_adapter

__all__ = ["canonical_json", "coerce_enums", "make_event"]

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
