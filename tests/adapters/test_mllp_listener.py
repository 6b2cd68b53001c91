"""The MLLP listener, driven by python-hl7's own ``mllp_send`` and by raw sockets.

The handler is the one the service wraps around its journal: MessageMapper, then the ACK.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from pumpguard.adapters.hl7v2.ack import read_ack
from pumpguard.adapters.hl7v2.live import MessageMapper
from pumpguard.adapters.mllp import (
    MllpClient,
    MllpClosed,
    MllpServer,
    client_ssl_context,
    exchange,
    frame,
    serve_mllp,
    server_ssl_context,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
IPEC = (
    FIXTURES / "samples/ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
).read_bytes()
MLLP_SEND = Path(sys.executable).parent / "mllp_send"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LIMIT = 8192  # the IPEC sample is 2.4 KB

BAD = {
    "utf-8 name under ASCII": IPEC.replace(b"PID|||", b"PID|||M\xc3\xbcller"),
    "oversized": IPEC.rstrip(b"\r") + b"\rNTE|1||" + b"x" * (3 * LIMIT) + b"\r",
    "no MSH": b"PID|||p1^^^H^MR\rOBR|1\r",
    "garbage": b"\x00\x01 hello \xff",
    "LF segments": IPEC.replace(b"\r", b"\n"),
}
EXPECTED = {
    "utf-8 name under ASCII": ("AE", "MSH-18"),
    "oversized": ("AR", "limit"),
    "no MSH": ("AR", "no MSH"),
    "garbage": ("AR", "does not open with an MSH"),
    "LF segments": ("AR", "LF, not CR"),
}


def mapper_handler(mapper: MessageMapper | None = None) -> Any:
    mapper = mapper or MessageMapper()

    async def handle(data: bytes, peer: str) -> bytes:
        return mapper.map(data).ack(NOW)

    return handle


@asynccontextmanager
async def listening(handler: Any = None, **options: Any) -> AsyncIterator[MllpServer]:
    options.setdefault("max_message_bytes", LIMIT)
    server = await serve_mllp(handler or mapper_handler(), clock=lambda: NOW, **options)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def mllp_send(port: int, path: Path) -> list[bytes]:
    """python-hl7's client as a subprocess: the ACKs it prints, unframed."""
    proc = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), "-p", str(port), "-f", str(path), "127.0.0.1",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    return re.findall(rb"\x0b(.*?)\x1c\r", out, re.DOTALL)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    data = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
    return data[data.index(b"\x0b") + 1 : -2]


@pytest.mark.asyncio
async def test_mllp_send_gets_aa_for_each_good_message(tmp_path):
    path = tmp_path / "good.hl7"
    path.write_bytes(frame(IPEC) + frame(IPEC.replace(b"6358051206735492253", b"second")))
    async with listening() as server:
        acks = await mllp_send(server.port, path)
    assert [(read_ack(a).code, read_ack(a).control_id) for a in acks] == [
        ("AA", "6358051206735492253"),
        ("AA", "second"),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("case", list(BAD))
async def test_mllp_send_bad_input_is_answered_with_a_reason_and_the_connection_survives(
    tmp_path, case
):
    path = tmp_path / "feed.hl7"
    path.write_bytes(frame(IPEC) + frame(BAD[case]) + frame(IPEC))
    async with listening() as server:
        acks = [read_ack(a) for a in await mllp_send(server.port, path)]
    code, words = EXPECTED[case]
    assert [a.code for a in acks] == ["AA", code, "AA"]
    assert words in acks[1].text
    assert acks[1].error_code


@pytest.mark.asyncio
async def test_many_connections_are_served_at_once_each_in_order():
    def numbered(client: int, n: int) -> bytes:
        return IPEC.replace(b"6358051206735492253", f"c{client}-{n}".encode())

    async with listening(max_in_flight=2) as server:
        results = await asyncio.gather(
            *(
                exchange("127.0.0.1", server.port, [numbered(c, n) for n in range(3)])
                for c in range(8)
            )
        )
    for client, answers in enumerate(results):
        acks = [read_ack(a) for a in answers]
        assert [(a.code, a.control_id) for a in acks] == [
            ("AA", f"c{client}-{n}") for n in range(3)
        ]
    assert server.stats.connections == 8


@pytest.mark.asyncio
async def test_resent_message_gets_the_same_answer(tmp_path):
    async with listening() as server:
        answers = await exchange("127.0.0.1", server.port, [BAD["no MSH"], IPEC, IPEC])
    first, again = read_ack(answers[1]), read_ack(answers[2])
    assert (
        (first.code, first.control_id)
        == (again.code, again.control_id)
        == (
            "AA",
            "6358051206735492253",
        )
    )
    assert read_ack(answers[0]).code == "AR"


@pytest.mark.asyncio
async def test_garbage_between_frames_is_answered_ar_naming_it_then_the_frame_is_read():
    async with listening() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"hello, not MLLP\r\n" + frame(IPEC))
        await writer.drain()
        junk, good = read_ack(await read_frame(reader)), read_ack(await read_frame(reader))
        writer.close()
        await writer.wait_closed()
    assert junk.code == "AR"
    assert "outside an MLLP block" in junk.text
    assert "hello, not MLLP" in junk.text
    assert good.code == "AA"
    assert server.stats.garbage == 1


@pytest.mark.asyncio
async def test_unframed_text_with_no_frame_after_it_is_answered_after_a_pause():
    async with listening(partial_timeout_s=0.05) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"MSH|^~\\&|unframed\r")
        await writer.drain()
        answer = read_ack(await read_frame(reader))
        writer.write(frame(IPEC))
        await writer.drain()
        after = read_ack(await read_frame(reader))
        writer.close()
        await writer.wait_closed()
    assert (answer.code, after.code) == ("AR", "AA")


@pytest.mark.asyncio
async def test_idle_connection_is_closed_and_counted():
    async with listening(idle_timeout_s=0.05) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
    assert server.stats.idle_closed == 1


@pytest.mark.asyncio
async def test_half_sent_frame_is_closed_after_its_timeout():
    async with listening(partial_timeout_s=0.05, idle_timeout_s=60) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x0b" + IPEC[:100])
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
    assert server.stats.partial_closed == 1


@pytest.mark.asyncio
async def test_connections_past_the_bound_are_refused_and_counted():
    async with listening(max_connections=1) as server:
        held = MllpClient("127.0.0.1", server.port)
        await held.connect()
        assert read_ack(await held.send(IPEC)).code == "AA"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        await held.close()
    assert server.stats.refused == 1


@pytest.mark.asyncio
async def test_one_message_in_flight_per_connection():
    order: list[str] = []
    release = asyncio.Event()

    async def slow(data: bytes, peer: str) -> bytes:
        order.append("start")
        await release.wait()
        order.append("end")
        return MessageMapper().map(data).ack(NOW)

    async with listening(slow) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(IPEC) + frame(IPEC))
        await writer.drain()
        async with asyncio.timeout(5):
            while not order:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)  # both frames are there to read; the second must wait
        assert order == ["start"]
        release.set()
        await read_frame(reader)
        await read_frame(reader)
        writer.close()
        await writer.wait_closed()
    assert order == ["start", "end", "start", "end"]


@pytest.fixture(name="closed_log_stream")
def _closed_log_stream() -> Iterator[None]:
    """structlog printing to a closed file, as after a CLI run bound a stream that is gone."""
    saved = structlog.get_config()
    stream = io.StringIO()
    stream.close()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))
    yield
    structlog.configure(**saved)


@pytest.mark.asyncio
@pytest.mark.usefixtures("closed_log_stream")
async def test_handler_failure_is_answered_ae_even_when_logging_fails():
    calls = 0

    async def flaky(data: bytes, peer: str) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("journal unavailable")
        return MessageMapper().map(data).ack(NOW)

    async with listening(flaky) as server:
        answers = await exchange("127.0.0.1", server.port, [IPEC, IPEC])
    assert [read_ack(a).code for a in answers] == ["AE", "AA"]
    assert "send it again" in read_ack(answers[0]).text
    assert server.stats.handler_errors == 1


@pytest.mark.asyncio
async def test_client_says_when_the_peer_closes_without_answering():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(MllpClosed):
            await exchange("127.0.0.1", port, [IPEC], timeout_s=5)


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a self-signed certificate (and no cryptography package)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.asyncio
async def test_tls_listener_answers_a_client_that_trusts_its_certificate(tmp_path):
    cert, key = make_cert(tmp_path)
    async with listening(ssl=server_ssl_context(cert, key)) as server:
        answers = await exchange(
            "127.0.0.1", server.port, [IPEC], ssl=client_ssl_context(cert), timeout_s=10
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await exchange("127.0.0.1", server.port, [IPEC], ssl=client_ssl_context())
    assert read_ack(answers[0]).code == "AA"
