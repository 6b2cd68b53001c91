"""Canonical events written as HL7 v2 and read back are the same events (hypothesis)."""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pumpguard.adapters.base import Reject
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2 import Hl7Source, Hl7Writer, frame
from pumpguard.engine.events import Event

# Separators and the escape character are in the alphabet on purpose.
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -^|&~\\", min_size=1, max_size=10)
TEXT = TEXT.filter(lambda s: s.strip() == s)
AMOUNT = st.integers(0, 100_000).map(lambda n: n / 100)
REASONS = ["user", "alarm", "occlusion", "air_in_line", "power", "other"]
ALARMS = ["occlusion", "air_in_line", "door_open", "battery_low", "end_of_infusion", "other"]


@st.composite
def courses(draw: st.DrawFn) -> list[Event]:
    """A well-formed course: what a pump and an ADT system can actually report."""
    offset = timezone(timedelta(minutes=15 * draw(st.integers(-48, 56))))
    ts = datetime(2026, 3, 2, 8, 0, tzinfo=offset)
    base = {
        "patient_id": draw(TEXT),
        "pump_id": draw(TEXT),
        **({"source": s} if (s := draw(st.none() | TEXT)) else {}),
    }
    channels: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for k in range(draw(st.integers(1, 20))):
        ts += timedelta(seconds=draw(st.integers(0, 20_000)))
        ch = draw(st.sampled_from("AB"))
        state = channels.setdefault(ch, {"status": "unknown", "bag": None})
        options = ["start", "alarm", "encounter"]
        if state["status"] == "running":
            options += ["stop", "bolus", "rate", "complete"]
        if state["status"] == "stopped":
            options += ["resume", "complete"]
        action = draw(st.sampled_from(options))
        ev: dict[str, Any] = {**base, "event_id": f"e{k}", "ts": ts, "channel": ch}
        if action == "start":
            bag = draw(st.none() | TEXT)
            if bag is not None and state["bag"] is not None and bag != state["bag"]:
                out.append(
                    {
                        **ev,
                        "type": "pump.bag_changed",
                        "bag_id": bag,
                        "previous_bag_id": state["bag"],
                    }
                )
                ev["event_id"] = f"e{k}#2"
            ev |= {"type": "pump.infusion_started", "drug": draw(TEXT), "rate_ml_h": draw(AMOUNT)}
            for name, value in (
                ("bag_id", bag),
                ("dose_mcg_day", draw(st.none() | AMOUNT)),
                ("vtbi_ml", draw(st.none() | AMOUNT)),
                ("concentration_mcg_ml", draw(st.none() | AMOUNT)),
            ):
                if value is not None:
                    ev[name] = value
            state["status"], state["bag"] = "running", bag or state["bag"]
        elif action == "stop":
            ev |= {"type": "pump.infusion_stopped", "reason": draw(st.sampled_from(REASONS))}
            state["status"] = "stopped"
        elif action == "resume":
            ev["type"] = "pump.infusion_resumed"
            if (rate := draw(st.none() | AMOUNT)) is not None:
                ev["rate_ml_h"] = rate
            state["status"] = "running"
        elif action == "rate":
            ev |= {"type": "pump.rate_changed", "rate_ml_h": draw(AMOUNT)}
            if (dose := draw(st.none() | AMOUNT)) is not None:
                ev["dose_mcg_day"] = dose
        elif action == "bolus":
            ev |= {"type": "pump.bolus", "volume_ml": draw(AMOUNT)}
        elif action == "complete":
            ev["type"] = "pump.infusion_completed"
            if state["bag"] is not None:
                ev["bag_id"] = state["bag"]
            if (vol := draw(st.none() | AMOUNT)) is not None:
                ev["volume_infused_ml"] = vol
            state["status"] = "ended"
        elif action == "alarm":
            ev |= {"type": "pump.alarm", "alarm": draw(st.sampled_from(ALARMS))}
            if draw(st.booleans()):
                ev["cleared"] = True
        else:
            kind = draw(st.sampled_from(["admitted", "transferred", "discharged"]))
            ev = {k: v for k, v in ev.items() if k not in ("pump_id", "channel")}
            ev["type"] = f"encounter.{kind}"
            if kind != "discharged":
                ev["setting"] = draw(st.sampled_from(["inpatient", "outpatient"]))
                if (loc := draw(st.none() | TEXT)) is not None:
                    ev["location"] = loc
        out.append(ev)
    return [make_event(e) for e in out]


class TestRoundTrip:
    """HL7 is a faithful carrier of the pump and encounter events it can express."""

    @settings(max_examples=150, deadline=None)
    @given(courses(), st.sampled_from(["mllp", "cr"]))
    def test_events_written_as_hl7_read_back_equal(self, events: list[Event], mode: str) -> None:
        data = frame(Hl7Writer().render_all(events), mode).encode()
        back = list(Hl7Source(data=data))
        # Messages that make no event on their own (program cleared, a held source switch)
        # say so as warnings; none is an error.
        assert [r for r in back if isinstance(r, Reject) and r.level == "error"] == []
        assert [r for r in back if not isinstance(r, Reject)] == events

    @settings(max_examples=30, deadline=None)
    @given(courses())
    def test_python_hl7_parser_reads_written_courses_the_same(self, events: list[Event]) -> None:
        data = frame(Hl7Writer().render_all(events)).encode()
        slow = AdapterConfig(hl7_parser="python-hl7")
        back = list(Hl7Source(data=data, config=slow))
        assert [r for r in back if not isinstance(r, Reject)] == events
