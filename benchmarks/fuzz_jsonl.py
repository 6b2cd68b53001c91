"""Fuzz the canonical JSONL and JSON sources (see fuzz_common.py).

.venv/bin/python benchmarks/fuzz_jsonl.py --seconds 180
"""

from __future__ import annotations

import json

import atheris
from fuzz_common import check, run, seeds_from

with atheris.instrument_imports():
    from pumpguard.adapters.detect import CanonicalJsonSource
    from pumpguard.adapters.jsonl import JsonlSource

VALID = [
    {"event_id": "e1", "type": "patient.registered", "ts": "2026-03-02T07:00:00Z",
     "patient_id": "p1", "weight_kg": 70, "indication": "relapsed_refractory"},
    {"event_id": "e2", "type": "pump.infusion_started", "ts": "2026-03-02T08:00:00+01:00",
     "patient_id": "p1", "pump_id": "P", "drug": "blinatumomab", "rate_ml_h": 10},
    {"event_id": "e3", "type": "pump.flush", "ts": "2026-03-02T09:00:00Z", "patient_id": "p1",
     "pump_id": "P", "volume_ml": 5},
]  # fmt: skip


def one_input(data: bytes) -> None:
    """First byte picks the reader: even for JSON lines, odd for one JSON document."""
    if not data:
        return
    body = data[1:]
    source = JsonlSource(data=body) if data[0] % 2 == 0 else CanonicalJsonSource(data=body)
    check(source)


if __name__ == "__main__":
    lines = "".join(json.dumps(e) + "\n" for e in VALID).encode()
    seeds = [b"\x00" + lines, b"\x01" + json.dumps(VALID).encode()]
    seeds += [b"\x00" + s for s in seeds_from("jsonl", ["*.jsonl", "*.txt"])]
    seeds += [b"\x01" + s for s in seeds_from("jsonl", ["*.json"])]
    run(one_input, seeds)
