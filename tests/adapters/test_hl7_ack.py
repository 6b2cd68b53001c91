"""ACKs for live HL7 v2: swapped parties, an aware time, the reason in MSA-3 and ERR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pumpguard.adapters.hl7v2.ack import ack, read_ack
from pumpguard.adapters.hl7v2.message import Hl7Message

IPEC = (
    Path(__file__).resolve().parent.parent
    / "fixtures/samples/ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
).read_bytes()
NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))


def segments(data: bytes) -> list[list[str]]:
    return [s.split("|") for s in data.decode("ascii").split("\r") if s]


def test_ack_swaps_sender_and_receiver_and_echoes_the_control_id():
    msh, msa = segments(ack(IPEC, "AA", now=NOW))
    assert msh[2:6] == [
        "DOC_VENDOR",
        "DOC_VENDOR",
        "PAT_DEVICE_PUMPVENDOR^9999990000000000^EUI-64",
        "PUMPVENDOR",
    ]
    assert msh[8] == "ACK^R42^ACK"
    assert msa == ["MSA", "AA", "6358051206735492253"]


def test_ack_time_is_written_with_its_utc_offset():
    msh = segments(ack(IPEC, "AA", now=NOW))[0]
    assert msh[6] == "20260302093015-0500"


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        ack(IPEC, "AA", now=datetime(2026, 3, 2, 9, 30))


def test_error_ack_carries_the_reason_in_msa3_and_an_err_segment_with_table_0357_code():
    data = ack(IPEC, "AE", "pump P1 is not bound", error_code="204", now=NOW)
    _, msa, err = segments(data)
    assert msa[3] == "pump P1 is not bound"
    assert err[3] == "204^Unknown key identifier^HL70357"
    assert err[4] == "E"
    assert err[8] == "pump P1 is not bound"


def test_bytes_without_msh_still_get_an_ar_from_pumpguard():
    summary = read_ack(ack(b"\x00\x01 not hl7", "AR", "garbage", error_code="100", now=NOW))
    assert (summary.code, summary.control_id, summary.error_code) == ("AR", "", "100")
    assert segments(ack(None, "AR", now=NOW))[0][2] == "PUMPGUARD"


def test_reason_text_with_separators_and_non_ascii_reads_back_and_stays_ascii():
    text = "name 'Müller|^&~\\' refused\r\nsecond line"
    data = ack(IPEC, "AE", text, now=NOW)
    data.decode("ascii")  # no decoder on the other side can fail on it
    assert read_ack(data).text == "name 'M\\xfcller|^&~\\' refused  second line"


def test_ack_of_a_parsed_message_uses_its_own_separators():
    text = IPEC.decode("ascii").replace("|", "#").replace("^", "*").split("\r")
    msg = Hl7Message.parse([s for s in text if s])
    msh = segments(ack(msg, "AA", now=NOW.astimezone(UTC)))[0]
    assert msh[4] == "PAT_DEVICE_PUMPVENDOR^9999990000000000^EUI-64"
    assert msh[6] == "20260302143015+0000"
