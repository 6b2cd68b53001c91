"""Mutated HL7 v2 never crashes the reader, and every message is still accounted for (hypothesis).

Valid inputs (the IHE sample, the B. Braun-shaped fixtures, a written course) are
damaged the ways files are damaged: lines dropped, doubled or swapped, the file
cut short, junk bytes inserted, separators flipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pumpguard.adapters.base import Reject
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2 import Hl7Source, Hl7Writer, frame

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CONFIG = AdapterConfig.from_yaml(FIXTURES / "bbraun" / "bindings.yaml")


def _written_course() -> bytes:
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    base = {"patient_id": "p1", "pump_id": "PUMP-7"}
    specs = [
        {"type": "pump.infusion_started", "drug": "blinatumomab", "rate_ml_h": 10.0},
        {"type": "pump.rate_changed", "rate_ml_h": 5.0},
        {"type": "pump.bolus", "volume_ml": 2.0},
        {"type": "pump.infusion_stopped", "reason": "occlusion"},
        {"type": "pump.alarm", "alarm": "occlusion"},
        {"type": "pump.alarm", "alarm": "occlusion", "cleared": True},
        {"type": "pump.infusion_resumed"},
        {"type": "pump.infusion_completed", "volume_infused_ml": 240.0},
    ]
    events = [
        make_event({**base, **s, "event_id": f"e{i}", "ts": t0 + timedelta(hours=i)})
        for i, s in enumerate(specs)
    ]
    return frame(Hl7Writer().render_all(events), "cr").encode()


SEEDS = [
    (
        FIXTURES / "samples" / "ihe" / "IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
    ).read_bytes(),
    (FIXTURES / "bbraun" / "four_pumps.hl7").read_bytes(),
    (FIXTURES / "bbraun" / "alarm_episode.hl7").read_bytes(),
    (FIXTURES / "bbraun" / "pcd01_powered_off_first.hl7").read_bytes(),
    _written_course(),
    (FIXTURES / "samples" / "adt" / "ADT01-23.hl7").read_bytes(),
]
JUNK = st.binary(min_size=1, max_size=12) | st.sampled_from(
    [b"\r", b"\n", b"\x0b", b"\x1c", b"|", b"^", b"~", b"\\", b"&", b"MSH|", b"{", b"\xff\xfe"]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with one to five damages done to it."""
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 5))):
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        action = draw(st.sampled_from(["drop", "dup", "swap", "cut", "junk", "flip", "digit"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        j = draw(st.integers(0, max(len(lines) - 1, 0)))
        if action == "drop" and lines:
            del lines[i]
        elif action == "dup" and lines:
            lines.insert(j, lines[i])
        elif action == "swap" and lines:
            lines[i], lines[j] = lines[j], lines[i]
        if action in ("drop", "dup", "swap"):
            data = b"\n".join(lines)
            continue
        k = draw(st.integers(0, len(data)))
        if action == "cut":
            data = data[:k]
        elif action == "junk":
            data = data[:k] + draw(JUNK) + data[k:]
        elif action == "flip" and data:
            sep = draw(st.sampled_from([b"|", b"^", b"~", b"&", b"\\", b"."]))
            other = draw(st.sampled_from([b"|", b"^", b"~", b"&", b"\\", b".", b""]))
            data = data.replace(sep, other, draw(st.integers(1, 3)))
        elif action == "digit" and data:
            digits = [n for n, c in enumerate(data) if 48 <= c <= 57]
            if digits:
                n = digits[draw(st.integers(0, len(digits) - 1))]
                big = draw(st.sampled_from([b"0", b"9", b"2000000", b"9" * 30, b"-1"]))
                data = data[:n] + big + data[n + 1 :]
    return data


class TestMutatedInput:
    """Whatever the damage, the reader returns records and a balanced tally."""

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(), st.sampled_from([None, CONFIG]))
    def test_reader_never_raises_and_tally_balances(
        self, data: bytes, config: AdapterConfig | None
    ) -> None:
        source = Hl7Source(data=data, label="mutated.hl7", config=config)
        records = list(source)
        assert source.tally.balanced
        assert source.tally.records >= 1
        # A record makes at most one fate, and each fate yields something.
        assert len(records) >= source.tally.records - source.tally.events

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated())
    def test_every_reject_has_a_position_and_a_short_reason(self, data: bytes) -> None:
        for record in Hl7Source(data=data, label="mutated.hl7", config=CONFIG):
            if isinstance(record, Reject):
                assert record.source == "mutated.hl7"
                assert "line " in record.position
                assert "\t" not in record.position
                assert "\n" not in record.position
                assert 0 < len(record.reason) <= 1100

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated())
    def test_both_parsers_survive_the_same_damage(self, data: bytes) -> None:
        slow = CONFIG.model_copy(update={"hl7_parser": "python-hl7"})
        source = Hl7Source(data=data, config=slow)
        list(source)
        assert source.tally.balanced
