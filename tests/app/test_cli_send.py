"""`pumpguard send`: HL7 files to an MLLP listener, one line per ACK, resends when unanswered."""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2.live import MessageMapper
from pumpguard.adapters.mllp import Framer, frame, serve_mllp
from pumpguard.cli import main
from pumpguard.cmd_send import Outgoing, send_all

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
IPEC = FIXTURES / "samples/ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
BBRAUN = FIXTURES / "bbraun"
PUMPGUARD = Path(sys.executable).parent / "pumpguard"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def pumpguard_send(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(PUMPGUARD), "send", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def listener():  # type: ignore[no-untyped-def]
    mapper = MessageMapper(AdapterConfig.from_yaml(BBRAUN / "bindings.yaml"))

    async def handle(data: bytes, peer: str) -> bytes:
        return mapper.map(data).ack(NOW)

    return await serve_mllp(handle, clock=lambda: NOW)


@pytest.mark.asyncio
async def test_send_prints_one_aa_line_per_message_and_exits_0():
    server = await listener()
    try:
        status, out, err = await pumpguard_send(
            str(IPEC), str(BBRAUN / "four_pumps.hl7"), "--to", f"127.0.0.1:{server.port}"
        )
    finally:
        server.close()
        await server.wait_closed()
    lines = [line.split("\t") for line in out.splitlines()]
    assert status == 0, err
    assert [(c, code) for c, code, _ in lines][:2] == [
        ("6358051206735492253", "AA"),
        ("63911000000000000101", "AA"),
    ]
    assert len(lines) == 6
    assert "not sent" in err  # the capture's notes are said, not sent


@pytest.mark.asyncio
async def test_send_raw_bad_input_prints_the_reason_and_exits_3(tmp_path):
    feed = tmp_path / "bad.hl7"
    good = IPEC.read_bytes()
    feed.write_bytes(frame(good) + frame(b"PID|||x\r") + frame(good.replace(b"\r", b"\n")))
    server = await listener()
    try:
        status, out, _ = await pumpguard_send(
            str(feed), "--raw", "--to", f"127.0.0.1:{server.port}"
        )
    finally:
        server.close()
        await server.wait_closed()
    lines = [line.split("\t") for line in out.splitlines()]
    assert status == 3
    assert [code for _, code, _ in lines] == ["AA", "AR", "AR"]
    assert "no MSH segment" in lines[1][2]
    assert "LF, not CR" in lines[2][2]


@pytest.mark.asyncio
async def test_send_to_nothing_listening_is_a_usage_error():
    # A subprocess: asyncio.run in a sync test leaves pytest-asyncio a stray loop to warn about.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused
        status, out, err = await pumpguard_send(
            str(IPEC), "--to", f"127.0.0.1:{port}", "--timeout", "2"
        )
    assert status == 2
    assert "cannot connect" in err
    assert out == ""


def test_send_needs_host_and_port():
    with pytest.raises(SystemExit) as exc:
        main(["send", str(IPEC), "--to", "localhost"])
    assert exc.value.code == 2


async def hangs_up_first(answers: list[int]):  # type: ignore[no-untyped-def]
    """A peer that closes its first connection unanswered and answers on the next."""
    mapper = MessageMapper()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answers.append(len(answers))
        framer = Framer()
        while data := await reader.read(65536):
            if len(answers) == 1:
                break
            for item in framer.feed(data):
                writer.write(frame(mapper.map(item.data).ack(NOW)))  # type: ignore[union-attr]
                await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.asyncio
@pytest.mark.parametrize(("resend", "expected"), [(1, 0), (0, 3)])
async def test_unanswered_message_is_resent_on_a_new_connection(resend, expected):
    connections: list[int] = []
    server = await hangs_up_first(connections)
    port = server.sockets[0].getsockname()[1]
    out = io.StringIO()
    message = [Outgoing("ipec", IPEC.read_bytes())]
    async with server:
        status = await send_all(
            message, "127.0.0.1", port, tls=None, timeout_s=5, resend=resend, out=out
        )
    assert status == expected
    if resend:
        assert out.getvalue().split("\t")[:2] == ["6358051206735492253", "AA"]
        assert len(connections) == 2
    else:
        assert "no answer" in out.getvalue()
