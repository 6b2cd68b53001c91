"""HL7 adapter throughput: PCD-10 and PCD-01 messages/s against a plain split() baseline.

Same messages, same run, one process (one core). Each figure is the median of
several runs. The baseline only splits segments, fields and components; the
adapter also frames, validates, maps MDC terms, converts units, binds patients,
derives events and validates them as canonical events. Target: >= 5,000 PCD-10
messages/s per core.

    .venv/bin/python benchmarks/hl7_throughput.py [--messages 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2 import Hl7Reader, Hl7Writer, frame, render_pcd01

IPEC = (
    Path(__file__).resolve().parent.parent
    / "tests/fixtures/samples/ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
)
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone(timedelta(hours=1)))


def ipec_messages(n: int) -> list[str]:
    """The IHE IPEC example (27 segments), each copy with its own control id."""
    text = IPEC.read_bytes().decode("ascii").rstrip("\r")
    return [text.replace("6358051206735492253", f"M{i}") for i in range(n)]


def course_messages(n: int) -> list[str]:
    """A pumpguard-written PCD-10 course: starts, stops, resumes, rate changes, boluses."""
    writer = Hl7Writer()
    out: list[str] = []
    base = {"patient_id": "p1", "pump_id": "PUMP-7", "source": "MW"}
    i = 0
    while len(out) < n:
        ts = T0 + timedelta(minutes=10 * i)
        cycle = [
            {
                "type": "pump.infusion_started",
                "drug": "blinatumomab",
                "rate_ml_h": 10.0,
                "dose_mcg_day": 9.0,
                "bag_id": f"B{i}",
                "vtbi_ml": 240.0,
            },
            {"type": "pump.rate_changed", "rate_ml_h": 5.0},
            {"type": "pump.infusion_stopped", "reason": "user"},
            {"type": "pump.infusion_resumed", "rate_ml_h": 5.0},
            {"type": "pump.bolus", "volume_ml": 1.0},
            {"type": "pump.infusion_completed", "bag_id": f"B{i}", "volume_infused_ml": 240.0},
        ]
        for k, spec in enumerate(cycle):
            event = make_event({**base, **spec, "event_id": f"e{i}-{k}", "ts": ts})
            out += writer.render(event)
        i += 1
    return out[:n]


def pcd01_messages(n: int) -> list[str]:
    """Periodic status: mostly unchanged, with a rate change or a stop every few messages."""
    out = []
    for i in range(n):
        phase = i % 10
        out.append(
            render_pcd01(
                pump_id="PUMP-1",
                patient_id="p1",
                ts=T0 + timedelta(minutes=i),
                control=f"S{i}",
                delivering=phase != 9,
                rate_ml_h=10.0 if phase < 5 else 5.0,
                drug="blinatumomab",
                volume_infused_ml=float(i),
            )
        )
    return out


def adapter(data: bytes) -> int:
    records = 0
    for _ in Hl7Reader(AdapterConfig()).read(data):
        records += 1
    return records


def adapter_python_hl7(data: bytes) -> int:
    return sum(1 for _ in Hl7Reader(AdapterConfig(hl7_parser="python-hl7")).read(data))


def baseline(data: bytes) -> int:
    """Plain split: messages, segments, fields and components; nothing checked or mapped."""
    count = 0
    for block in data.split(b"\x1c"):
        text = block.strip(b"\x0b\r\n").decode("utf-8")
        if not text:
            continue
        _ = [[f.split("^") for f in seg.split("|")] for seg in text.split("\r")]
        count += 1
    return count


def measure(fn: Callable[[bytes], int], data: bytes, n: int, runs: int) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(data)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-python-hl7", action="store_true")
    args = parser.parse_args()
    n, runs = args.messages, args.runs
    workloads = {
        "PCD-10 IHE IPEC example (27 segments)": ipec_messages(n),
        "PCD-10 course (14-16 segments, derivations)": course_messages(n),
        "PCD-01 status (9-10 segments)": pcd01_messages(n),
    }
    print(f"{n} messages per workload, median of {runs} runs, one process")
    print(f"{'workload':46} {'adapter/s':>10} {'split/s':>10} {'ratio':>6} {'python-hl7/s':>13}")
    for name, messages in workloads.items():
        data = frame(messages).encode()
        assert baseline(data) == n
        fast = measure(adapter, data, n, runs)
        base = measure(baseline, data, n, runs)
        slow = (
            float("nan")
            if args.skip_python_hl7
            else measure(adapter_python_hl7, data, n, max(1, runs // 2))
        )
        print(f"{name:46} {fast:10,.0f} {base:10,.0f} {fast / base:6.2f} {slow:13,.0f}")


if __name__ == "__main__":
    main()
