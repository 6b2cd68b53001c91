"""A course run as the label asks raises nothing above info (the pack's negative test)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pumpguard.engine.core import Engine
from pumpguard.engine.events import event_adapter
from pumpguard.engine.pack import load_pack
from pumpguard.rules import default_pack
from pumpguard.simulations.course import CourseBuilder, demo_start


def _course(cycles: int, **patient) -> list:
    t0 = demo_start()
    b = CourseBuilder("C1", **patient)
    b.register(t0 - timedelta(hours=8))
    rr = b.indication == "relapsed_refractory"
    first = [(1, 9.0), (8, 28.0)] if rr else [(1, 28.0)]
    end = b.cycle(1, t0, doses=first, hospital_days=9 if rr else 3)
    end = b.cycle(2, end + timedelta(days=14), hospital_days=2)
    for n in range(3, cycles + 1):
        phase = "continued" if n >= 6 else "consolidation"
        gap = 56 if n >= 7 else 14  # 56 days free after each continued-therapy cycle
        end = b.cycle(n, end + timedelta(days=gap), phase=phase, supervise_start=True)
    return [event_adapter.validate_json(json.dumps(e)) for e in b.sorted_events()]


def _findings(events, edition):
    engine = Engine(load_pack(default_pack(), edition=edition))
    out = []
    for e in events:
        out.extend(engine.submit(e))
    out.extend(engine.advance(events[-1].ts.timestamp()))
    return out


def test_clean_five_cycle_course_raises_nothing():
    events = _course(5, weight_kg=70.0)
    assert len(events) > 500
    assert _findings(events, "seed") == []


def test_clean_label_2024_course_past_cycle_five_raises_nothing():
    events = _course(8, weight_kg=70.0)
    assert _findings(events, "label-2024") == []


def test_the_same_sixth_cycle_is_beyond_the_seed_course():
    """Negative control: the course above is only clean under the 2024 edition."""
    codes = [f.code for f in _findings(_course(6, weight_kg=70.0), "seed")]
    assert codes == ["MAX_CYCLES_EXCEEDED"]


@pytest.mark.parametrize("indication", ["mrd_positive", "consolidation"])
def test_clean_course_of_other_indications_raises_nothing(indication):
    events = _course(4, weight_kg=64.0, indication=indication)
    assert _findings(events, "label-2024") == []


def test_findings_record_edition_and_parameters_in_force(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("site: Ward 7\nparameters:\n  bag_grace_h: 0.5\n")
    a = load_pack(default_pack())
    b = load_pack(default_pack(), site_file=site)
    assert a.ref.sha256 == b.ref.sha256
    assert a.ref.parameters_sha256 != b.ref.parameters_sha256
    assert b.ref.site == "Ward 7"
