"""Open-ended input: whatever a line holds, it becomes an event or a reject, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pumpguard.adapters.base import Reject
from pumpguard.adapters.jsonl import JsonlSource
from pumpguard.cli import main
from pumpguard.engine.events import Event

GOOD = {
    "event_id": "e1",
    "type": "pump.flush",
    "ts": "2026-03-02T08:00:00Z",
    "patient_id": "p1",
    "pump_id": "P",
    "volume_ml": 5,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[bytes]:
    mutated = st.builds(
        lambda key, value: json.dumps({**GOOD, key: value}, allow_nan=True).encode(),
        st.sampled_from([*GOOD, "extra"]),
        json_values,
    )
    return st.one_of(mutated, st.binary(max_size=80), st.text(max_size=80).map(str.encode))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_mutations(), min_size=1, max_size=8))
def test_every_line_is_an_event_or_a_reject(lines, tmp_path_factory):
    path = Path(tmp_path_factory.mktemp("j")) / "in.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    records = list(JsonlSource(path))
    errors = [r for r in records if isinstance(r, Reject) and r.level == "error"]
    events = [r for r in records if isinstance(r, Event)]
    nonblank = sum(1 for line in lines if line.replace(b"\n", b" ").strip())
    assert len(errors) + len(events) == nonblank
    assert all(r.position.startswith("line ") for r in errors)


def test_times_before_1970_and_far_ahead_sort_correctly(tmp_path, capsys):
    """A start in the year 500 comes before flushes in 1969 and 9999, whatever the file order."""
    start = {
        **GOOD,
        "event_id": "s",
        "type": "pump.infusion_started",
        "ts": "0500-01-01T00:00:00Z",
        "drug": "blinatumomab",
        "rate_ml_h": 10,
        "dose_mcg_day": 9,
    }
    del start["volume_ml"]
    late = {**GOOD, "event_id": "f2", "ts": "9999-01-01T00:00:00Z"}
    moon = {**GOOD, "event_id": "f1", "ts": "1969-07-20T20:17:00Z"}
    f = tmp_path / "old.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in (late, moon, start)) + "\n")
    main(["replay", str(f)])
    flushes = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    flushes = [x for x in flushes if x["code"] == "LINE_FLUSH"]
    assert [x["evidence"] for x in flushes] == [["f1"], ["f2"]]
