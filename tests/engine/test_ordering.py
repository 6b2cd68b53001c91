"""The replay order's integers (issue 14): the quick forms give the exact values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from pumpguard.engine.events import EVENT_TYPES
from pumpguard.engine.ordering import _rank, instant_us, instant_us_at, same_second_rank

OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=OFFSETS)
)
def test_the_microsecond_from_a_float_timestamp_is_the_exact_one_in_any_year(ts):
    assert instant_us_at(ts, ts.timestamp()) == instant_us(ts)


@given(st.integers(-(2**32) * 10**6 + 1, 2**32 * 10**6 - 1))
def test_every_microsecond_within_the_float_range_rounds_back_exactly(us):
    ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    assert instant_us_at(ts, ts.timestamp()) == us


def test_the_remembered_rank_of_every_event_type_is_the_worked_out_one():
    for event_type in (*EVENT_TYPES, "unknown.kind", "pump.new_act"):
        assert same_second_rank(event_type) == _rank(event_type)
