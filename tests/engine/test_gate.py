"""The gate's quick pass (issue 14) refuses exactly what its full walk refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pumpguard.engine.gate import MAX_PROPERTIES, MAX_STRING, GateError, _check_deep, check_message

SCALARS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["x" * MAX_STRING, "x" * (MAX_STRING + 1)]),
    st.booleans(),
    st.none(),
    st.integers(-3, 3),
    st.lists(st.integers(), max_size=1),
)
KEYS = st.text(min_size=1, max_size=3)
FLAT = st.dictionaries(KEYS, SCALARS, max_size=6)
NESTED = st.dictionaries(KEYS, st.one_of(SCALARS, FLAT, st.dictionaries(KEYS, FLAT, max_size=2)))


def _refused(check: Any, message: dict[str, Any]) -> str | None:
    try:
        assert check(message) is message
    except GateError as exc:
        return str(exc)
    return None


@given(st.one_of(FLAT, NESTED))
def test_the_quick_pass_refuses_what_the_full_walk_refuses_with_its_reason(message):
    assert _refused(check_message, message) == _refused(_check_deep, message)


@pytest.mark.parametrize("nested", [False, True])
def test_more_properties_than_the_limit_are_refused_flat_or_by_namespace(nested):
    values = {f"p{i}": 1.0 for i in range(MAX_PROPERTIES + 1)}
    message = {"state": values} if nested else values
    with pytest.raises(GateError, match="properties exceed"):
        check_message(message)
