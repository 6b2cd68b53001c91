"""MessageMapper: one live message to events and the ACK decision, state kept per feed."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2 import Hl7Writer, split_messages
from pumpguard.adapters.hl7v2.ack import read_ack
from pumpguard.adapters.hl7v2.framing import RawMessage
from pumpguard.adapters.hl7v2.live import MessageMapper, python_codec

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
IPEC = (
    FIXTURES / "samples/ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
).read_bytes()
PIV = FIXTURES / "samples/ihe/PIV_PCD-03_RGV_O15_example2_normal_saline_IHE_TF2_Rev8.hl7"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
T0 = datetime.fromisoformat("2026-03-02T08:00:00+01:00")


def messages(path: Path) -> list[bytes]:
    return [
        b"\r".join(m.segments) + b"\r"
        for m in split_messages(path.read_bytes())
        if isinstance(m, RawMessage)
    ]


def written(*events: dict[str, Any], source: str = "PUMPGW") -> list[bytes]:
    """Events as the HL7 messages a pump gateway would send for them."""
    writer = Hl7Writer()
    out: list[str] = []
    for data in events:
        base = {"patient_id": "p1", "pump_id": "P1", "channel": "A", "source": source}
        out += writer.render(make_event({**base, **data}))
    return [m.encode() + b"\r" for m in out]


START = {
    "event_id": "s1",
    "type": "pump.infusion_started",
    "ts": T0,
    "drug": "blinatumomab",
    "rate_ml_h": 10.0,
}
RATE = {"event_id": "r1", "type": "pump.rate_changed", "ts": T0.replace(hour=9), "rate_ml_h": 20.0}


def test_good_message_is_aa_with_its_event_and_dedupe_key():
    result = MessageMapper().map(IPEC)
    assert result.decision.code == "AA"
    assert [e.type for e in result.events] == ["pump.infusion_started"]
    feed = "PAT_DEVICE_PUMPVENDOR^9999990000000000^EUI-64|PUMPVENDOR"
    assert result.dedupe_key == f"{feed}|6358051206735492253"
    assert result.charset == "ascii"
    assert read_ack(result.ack(NOW)).code == "AA"


def test_resent_message_has_the_same_key_and_answer():
    mapper = MessageMapper()
    first, again = mapper.map(IPEC), mapper.map(IPEC)
    assert first.dedupe_key == again.dedupe_key
    assert first.decision == again.decision


def test_message_without_control_id_is_keyed_by_its_content():
    no_id = IPEC.replace(b"|6358051206735492253|", b"||")
    mapper = MessageMapper()
    key = mapper.map(no_id).dedupe_key
    assert key is not None
    assert "#sha256:" in key
    assert mapper.map(no_id).dedupe_key == key
    assert mapper.map(no_id.replace(b"PUMPVENDOR|DOC", b"OTHER|DOC")).dedupe_key != key


def test_utf8_name_under_an_ascii_charset_is_ae_wrong_charset():
    result = MessageMapper().map(IPEC.replace(b"PID|||", b"PID|||M\xc3\xbcller"))
    assert (result.decision.code, result.decision.reason) == ("AE", "wrong charset")
    assert "ASCII" in result.decision.text
    assert "byte" in result.decision.text
    assert not result.events


def test_latin1_bytes_with_an_empty_charset_are_ae_as_not_utf8():
    result = MessageMapper().map(IPEC.replace(b"|ASCII|", b"||").replace(b"PID|||", b"PID|||\xe9"))
    assert (result.decision.code, result.decision.reason) == ("AE", "wrong charset")
    assert "UTF-8" in result.decision.text


def test_charset_named_in_msh18_decodes_the_message():
    text = "MSH|^~\\&|GW|WARD|PG|PG|20260302080000+0000||ADT^A01|c1|P|2.6||||||{cs}\r"
    text += "EVN|A01|20260302080000+0000\rPID|1||p\u0161^^^H^MR\rPV1|1|I|W1\r"
    utf8 = MessageMapper().map(text.format(cs="UNICODE UTF-8").encode("utf-8"))
    latin2 = MessageMapper().map(text.format(cs="8859/2").encode("iso8859-2"))
    assert utf8.decision.code == latin2.decision.code == "AA"
    assert [e.patient_id for e in latin2.events] == [e.patient_id for e in utf8.events] == ["pš"]


def test_unknown_charset_name_is_ae_naming_it():
    result = MessageMapper().map(IPEC.replace(b"|ASCII|", b"|KLINGON|"))
    assert (result.decision.code, result.decision.reason) == ("AE", "unknown charset")
    assert "'KLINGON'" in result.decision.text


@pytest.mark.parametrize(
    ("name", "codec"),
    [("", "utf-8"), ("UNICODE UTF-8", "utf-8"), ("8859/1", "iso8859-1"), ("ascii", "ascii")],
)
def test_hl7_charset_names_map_to_python_codecs(name, codec):
    assert python_codec(name) == codec


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"PID|||x\rOBR|1\r", "no MSH segment before them"),
        (b"\x00\x01garbage\xff", "does not open with an MSH"),
        (b"", "empty"),
        (IPEC.replace(b"\r", b"\n"), "LF, not CR"),
        (IPEC + IPEC, "2 messages in one MLLP block"),
        (IPEC + b"a note after the message\r", "besides the message"),
    ],
)
def test_unreadable_block_is_ar_unparseable_with_its_reason(data, why):
    result = MessageMapper().map(data)
    assert (result.decision.code, result.decision.reason) == ("AR", "unparseable")
    assert why in result.decision.text
    assert why in read_ack(result.ack(NOW)).text


def test_lf_segments_are_read_when_the_site_accepts_them():
    result = MessageMapper(accept_lf=True).map(IPEC.replace(b"\r", b"\n"))
    assert result.decision.code == "AA"
    assert len(result.events) == 1


def test_order_message_type_is_ar_unmapped():
    result = MessageMapper().map(messages(PIV)[0])
    assert (result.decision.code, result.decision.reason) == ("AR", "unmapped")
    assert result.decision.error_code == "200"
    assert "PCD-03" in result.decision.text


def test_unknown_trigger_of_a_known_type_is_ar_unsupported_event():
    result = MessageMapper().map(IPEC.replace(b"ORU^R42^ORU_R01", b"ORU^R99"))
    assert (result.decision.code, result.decision.error_code) == ("AR", "201")


def test_pump_with_no_patient_is_ae_unbound_pump_and_aa_once_bound():
    first = messages(FIXTURES / "bbraun/four_pumps.hl7")[0]
    unbound = MessageMapper().map(first)
    assert (unbound.decision.code, unbound.decision.reason) == ("AE", "unbound pump")
    assert unbound.decision.error_code == "204"
    config = AdapterConfig.from_yaml(FIXTURES / "bbraun/bindings.yaml")
    bound = MessageMapper(config).map(first)
    assert bound.decision.code == "AA"
    assert [e.patient_id for e in bound.events] == ["pt-101"]


def test_message_read_but_refused_is_ae_rejected():
    result = MessageMapper().map(IPEC.replace(b"|||20151015132106-0500", b"|||2015101513-0500"))
    assert (result.decision.code, result.decision.reason) == ("AE", "rejected")
    assert result.rejects
    assert not result.events


def test_source_switch_stop_and_its_start_pair_across_messages_and_a_snapshot():
    stop, start = written(START, RATE)[1:]
    mapper = MessageMapper()
    mapper.map(written(START)[0])
    held = mapper.map(stop)
    assert held.decision.code == "AA"
    assert not held.events
    assert "held" in held.warnings[0].reason
    restored = pickle.loads(pickle.dumps(mapper))
    released = restored.map(start)
    assert [e.type for e in released.events] == ["pump.rate_changed"]


def test_state_is_kept_per_sending_application():
    mapper = MessageMapper()
    for message in written(START, RATE, source="GW-A")[:2]:
        mapper.map(message)  # feed A: started, then a source-switch STOP held back
    other_feed = mapper.map(written(START, source="GW-B")[0])
    assert [e.type for e in other_feed.events] == ["pump.infusion_started"]
    feed_a = mapper.readers[("GW-A", "PUMPGUARD")]
    assert feed_a.channels[("P1", "A")].pending_stop is not None


def test_inbound_ack_is_read_but_not_answered():
    ack_msg = b"MSH|^~\\&|X|Y|PG|PG|20260302080000+0000||ACK^R42^ACK|a1|P|2.6\rMSA|AA|m1\r"
    result = MessageMapper().map(ack_msg)
    assert result.decision.code == "AA"
    assert result.ack(NOW) == b""


@pytest.fixture(name="closed_log_stream")
def _closed_log_stream() -> Iterator[None]:
    """structlog printing to a closed file, as after a CLI run bound a stream that is gone."""
    saved = structlog.get_config()
    stream = io.StringIO()
    stream.close()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("closed_log_stream")
def test_a_mapping_bug_costs_one_message_an_ae_even_when_logging_fails(monkeypatch):
    mapper = MessageMapper()

    def broken(*_: object) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr("pumpguard.adapters.hl7v2.reader.Hl7Reader.read_message", broken)
    result = mapper.map(IPEC)
    assert (result.decision.code, result.decision.reason) == ("AE", "internal error")
    monkeypatch.undo()
    assert mapper.map(IPEC).decision.code == "AA"


def test_acks_are_the_same_whichever_parser_read_the_messages():
    stop = {
        "event_id": "x1",
        "type": "pump.infusion_stopped",
        "ts": T0.replace(hour=10),
        "reason": "user",
    }
    feed = [IPEC, *messages(PIV), *written(START, RATE, stop), b"MSH|^~\\&|A|B|||||ORU^R42|9|P"]
    fast = MessageMapper()
    full = MessageMapper(AdapterConfig(hl7_parser="python-hl7"))
    for data in feed:
        a, b = fast.map(data), full.map(data)
        assert a.ack(NOW) == b.ack(NOW)
        assert a.decision == b.decision
