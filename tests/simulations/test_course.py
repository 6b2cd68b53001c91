"""The deterministic course builder behind the demo and the benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pumpguard.engine.errors import SchemaError
from pumpguard.simulations.course import CourseBuilder

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_an_amended_record_is_validated_again():
    course = CourseBuilder("P-1")
    ev = course.add("nursing.bag_change", T0, bag_id="B1", actor_role="nurse")
    course.amend(ev, line_flushed=True)
    assert ev["line_flushed"] is True
    with pytest.raises(SchemaError, match="line_flushed"):
        course.amend(ev, line_flushed="yes")


def test_a_clean_cycle_numbers_its_events_in_the_order_written():
    course = CourseBuilder("P-1")
    course.register(T0)
    course.cycle(1, T0, doses=[(1, 9.0), (8, 28.0)], hospital_days=9)
    ids = [e["event_id"] for e in course.events]
    assert ids == [f"P-1-{n:05d}" for n in range(1, len(ids) + 1)]
    assert [e["type"] for e in course.events[:5]] == [
        "patient.registered",
        "pump.registered",
        "cycle.ordered",
        "encounter.admitted",
        "medication.administered",
    ]
