"""Finding messages: ``{state.interruption_h|hm}`` placeholders, checked at load time.

A nurse reads "restarted after 5 h 10 min", not "interruption_h=5.1667". The
filters are few and named for what they print; an unknown placeholder is a
pack error, never a blank in an alert.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FILTERS", "placeholders", "render"]

_PLACEHOLDER = re.compile(r"\{([a-z]+)\.([a-z0-9_]+)(?:\|([a-z]+))?\}")


def _hm(hours: Any) -> str:
    total = round(float(hours) * 60)
    h, m = divmod(total, 60)
    if h >= 48:
        d, h = divmod(h, 24)
        return f"{d} d {h} h {m:02d} min"
    return f"{h} h {m:02d} min"


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _days(hours: Any) -> str:
    return _num(round(float(hours) / 24, 1))


def _pct(ratio: Any) -> str:
    return _num(round(float(ratio) * 100, 1)) + " %"


def _text(value: Any) -> str:
    return str(value).replace("_", " ")


FILTERS: dict[str, Callable[[Any], str]] = {
    "hm": _hm,
    "num": _num,
    "days": _days,
    "pct": _pct,
    "text": _text,
}


def placeholders(template: str) -> list[tuple[str, str, str | None]]:
    """(namespace, field, filter) for each placeholder, to check against the pack."""
    return [(m.group(1), m.group(2), m.group(3)) for m in _PLACEHOLDER.finditer(template)]


def render(template: str, env: Mapping[str, Mapping[str, Any]]) -> str:
    """Fill placeholders; an unknown value prints as "not recorded", never as 0."""

    def sub(m: re.Match[str]) -> str:
        value = env.get(m.group(1), {}).get(m.group(2))
        if value is None:
            return "not recorded"
        fn = FILTERS.get(m.group(3) or "num", _num)
        return fn(value)

    return _PLACEHOLDER.sub(sub, template)
