"""Coverage-guided fuzzing of the HL7 v2 source (atheris / libFuzzer), for a bounded time.

Not part of CI or ``make test``: run it by hand after changing the HL7 reader::

    .venv/bin/pip install atheris
    .venv/bin/python benchmarks/fuzz_hl7.py --seconds 300

It starts from pumpguard's own HL7 fixtures (and a course the writer renders),
mutates the bytes, and checks what the property tests check: ``Hl7Source``
never raises, its tally balances, and every reject has a position and a short
reason. A failure leaves libFuzzer's ``crash-*`` file in ``--artifacts``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from pumpguard.adapters.base import Reject
    from pumpguard.adapters.config import AdapterConfig
    from pumpguard.adapters.hl7v2 import Hl7Source

from pumpguard.adapters.common import make_event
from pumpguard.adapters.hl7v2 import Hl7Writer, frame

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CONFIGS = [
    None,
    AdapterConfig.from_yaml(FIXTURES / "bbraun" / "bindings.yaml"),
    AdapterConfig(time_zone="Europe/Berlin", pump_id_components=[3, 1]),
    AdapterConfig(hl7_parser="python-hl7"),
]


def seeds() -> list[bytes]:
    """Valid and damaged inputs the fuzzer starts from."""
    found = sorted(FIXTURES.glob("**/*.hl7"))
    out = [p.read_bytes() for p in found]
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    base = {"patient_id": "p1", "pump_id": "PUMP-7"}
    specs = [
        {"type": "pump.infusion_started", "drug": "blinatumomab", "rate_ml_h": 10.0},
        {"type": "pump.bolus", "volume_ml": 2.0},
        {"type": "pump.rate_changed", "rate_ml_h": 5.0},
        {"type": "pump.infusion_stopped", "reason": "occlusion"},
        {"type": "pump.alarm", "alarm": "occlusion"},
        {"type": "pump.alarm", "alarm": "occlusion", "cleared": True},
        {"type": "pump.infusion_resumed"},
        {"type": "pump.infusion_completed"},
    ]
    events = [
        make_event({**base, **s, "event_id": f"e{i}", "ts": t0 + timedelta(hours=i)})
        for i, s in enumerate(specs)
    ]
    out.append(frame(Hl7Writer().render_all(events)).encode())
    return out


def one_input(data: bytes) -> None:
    """The property every input must keep: no exception, balanced tally, located rejects."""
    if not data:
        return
    config = CONFIGS[data[0] % len(CONFIGS)]
    source = Hl7Source(data=data[1:], label="fuzz.hl7", config=config)
    for record in source:
        if isinstance(record, Reject):
            if "line " not in record.position or "\t" in record.position:
                msg = f"reject without a usable position: {record!r}"
                raise AssertionError(msg)
            if not 0 < len(record.reason) <= 1100:
                msg = f"reject reason of {len(record.reason)} characters"
                raise AssertionError(msg)
    if not source.tally.balanced or source.tally.records < 1:
        msg = f"tally does not account for the input: {source.tally}"
        raise AssertionError(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz (default 60)")
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: a temporary one)")
    parser.add_argument("--artifacts", type=Path, default=Path("."), help="where crashes go")
    parser.add_argument(
        "--max-len", type=int, default=8192, help="longest input in bytes (default 8192)"
    )
    args, rest = parser.parse_known_args()
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="pumpguard-fuzz-hl7-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds()):
        for c in range(len(CONFIGS)):
            (corpus / f"seed-{i:03d}-{c}").write_bytes(bytes([c]) + seed)
    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={args.seconds}",
        f"-artifact_prefix={args.artifacts}/",
        "-print_final_stats=1",
        f"-max_len={args.max_len}",
        "-rss_limit_mb=4096",
        *rest,
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
