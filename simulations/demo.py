"""The bundled demo course: two patients, four weeks, a few deliberate errors.

P-1001 (relapsed/refractory, 72 kg) runs a clean cycle 1 with the step-up on
day 8, except that the line is flushed at the bag change on day 12 and an
occlusion on day 16 stops the pump for 5 h 10 min, restarted at home without
supervision or premedication. P-1002 (MRD-positive, 58 kg) is discharged after
one day of the three the label asks for, and has a pump flush at a bag
completion on day 20; a 4-hour stop on day 23 is restarted with premedication
under documented supervision (no finding).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pumpguard.engine.builder import stream_time
from pumpguard.simulations.course import CourseBuilder, demo_start

__all__ = ["demo_events"]


def demo_events() -> list[dict[str, Any]]:
    """The demo stream, sorted by time (the same bytes every run)."""
    t0 = demo_start()
    a = CourseBuilder("P-1001", weight_kg=72.0, indication="relapsed_refractory")
    a.register(t0 - timedelta(hours=8))
    a.cycle(1, t0, doses=[(1, 9.0), (8, 28.0)], hospital_days=9)
    day12 = t0 + timedelta(days=11)
    flush = next(
        e for e in a.events if e["type"] == "nursing.bag_change" and e["ts"] > stream_time(day12)
    )
    a.amend(flush, line_flushed=True)
    stop = t0 + timedelta(days=15, hours=3)
    a.add("pump.alarm", stop, alarm="occlusion")
    a.add("pump.infusion_stopped", stop, reason="occlusion")
    a.add("pump.alarm", stop + timedelta(hours=5, minutes=10), alarm="occlusion", cleared=True)
    a.add("pump.infusion_resumed", stop + timedelta(hours=5, minutes=10), rate_ml_h=10.0)

    b_start = t0 + timedelta(days=1, hours=2)
    b = CourseBuilder("P-1002", weight_kg=58.0, indication="mrd_positive")
    b.register(b_start - timedelta(hours=8))
    b.add("encounter.admitted", b_start - timedelta(hours=2), setting="inpatient")
    b.cycle(1, b_start, phase="consolidation", doses=[(1, 28.0)], hospital_days=0)
    b.add("encounter.discharged", b_start + timedelta(hours=26))
    completion = next(
        e
        for e in b.events
        if e["type"] == "pump.infusion_completed"
        and e["ts"] > stream_time(b_start + timedelta(days=19))
    )
    b.add(
        "pump.flush",
        datetime.fromisoformat(completion["ts"]) + timedelta(minutes=1),
        volume_ml=10.0,
    )
    pause = b_start + timedelta(days=22, hours=6)
    b.add("pump.infusion_stopped", pause, reason="user")
    b.add(
        "medication.administered",
        pause + timedelta(hours=3),
        drug="dexamethasone",
        dose_mg=16.0,
        route="PO",
    )
    b.add(
        "nursing.supervision",
        pause + timedelta(hours=4, minutes=30),
        actor_role="home_health_nurse",
    )
    b.add("pump.infusion_resumed", pause + timedelta(hours=4, minutes=5))
    return sorted(a.events + b.events, key=lambda e: (e["ts"], e["patient_id"], e["event_id"]))
