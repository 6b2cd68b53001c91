"""``pumpguard send FILE... --to HOST:PORT``: an MLLP client for testing feeds.

Each message of each file is sent in turn on one connection, and each answer
printed on one line: the control id, MSA-1 and MSA-3. A message with no
answer (timeout, connection dropped) is sent again on a new connection up to
``--resend`` times: safe, since the listener answers a resend again without
processing it twice. Exit 0 when every message got ``AA``; 3 when any got
``AE``/``AR`` or no answer; 2 for a usage error, an unreadable file or no
connection at all.

Files are read as replay reads them (MLLP-framed or not, any segment ends:
:func:`pumpguard.adapters.hl7v2.split_messages`); text between messages is
said on standard error and not sent. ``--raw`` sends bytes as they are (each
MLLP block, or the whole file when it has none), to test a listener with
malformed input.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpguard.adapters.hl7v2.ack import read_ack
from pumpguard.adapters.hl7v2.framing import RawMessage, split_messages
from pumpguard.adapters.mllp import MllpClient, MllpError, client_ssl_context
from pumpguard.engine.errors import ParseError

__all__ = ["Outgoing", "add_parser", "outgoing", "run", "send_all"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send and where it came from (for the line printed about it)."""

    where: str
    data: bytes


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "send",
        help="send HL7 files to an MLLP listener and print each ACK",
        description="Send each HL7 message of the files over MLLP and print one line per "
        "answer: control id, MSA-1, MSA-3. Exit 3 when any answer is AE/AR or missing.",
    )
    sp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    sp.add_argument("--to", required=True, type=_host_port, metavar="HOST:PORT")
    sp.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per answer")
    sp.add_argument(
        "--resend", type=int, default=0, metavar="N", help="resend an unanswered message N times"
    )
    sp.add_argument("--raw", action="store_true", help="send bytes as they are (each block)")
    sp.add_argument("--tls", action="store_true", help="TLS, the server checked by system CAs")
    sp.add_argument("--tls-ca", type=Path, help="TLS, the server checked against this CA (PEM)")
    sp.add_argument("--tls-cert", type=Path, help="client certificate (PEM), for mutual TLS")
    sp.add_argument("--tls-key", type=Path, help="client key (PEM)")
    sp.add_argument("--tls-server-name", help="name to check the server certificate against")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"{text!r} is not HOST:PORT"
        raise argparse.ArgumentTypeError(msg)
    return host.strip("[]"), int(port)


def outgoing(path: Path, data: bytes, *, raw: bool) -> tuple[list[Outgoing], list[str]]:
    """The messages of one file, and what in it is not sent (said on standard error)."""
    if raw:
        blocks = [b.lstrip(b"\r\n").removeprefix(b"\x0b") for b in data.split(b"\x1c")]
        blocks = [b for b in blocks if b.strip(b"\r\n")] if b"\x0b" in data else [data]
        return [Outgoing(f"{path} block {i}", b) for i, b in enumerate(blocks, 1)], []
    out: list[Outgoing] = []
    skipped: list[str] = []
    for item in split_messages(data):
        if isinstance(item, RawMessage):
            body = b"\r".join(item.segments) + b"\r"
            out.append(Outgoing(f"{path} {item.position}", body))
        else:
            skipped.append(f"{path} {item.position}: not sent: {item.reason}")
    return out, skipped


def _control_id(data: bytes) -> str:
    first = data.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 8:
        return "-"
    fields = first.split(first[3:4])
    control = fields[9].split(fields[1][:1] or b"^")[0] if len(fields) > 9 else b""
    return control.decode("utf-8", "replace") or "-"


async def _send_one(client: MllpClient, msg: Outgoing, resend: int) -> tuple[bytes | None, str]:
    """The answer to one message (resending on no answer), or None and why there is none."""
    why = ""
    for _ in range(resend + 1):
        try:
            return await client.send(msg.data), ""
        except (MllpError, OSError) as exc:
            why = str(exc) or type(exc).__name__
            await client.close()  # a new connection for the resend
    return None, why


async def send_all(
    messages: list[Outgoing],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    timeout_s: float,
    resend: int = 0,
    server_hostname: str | None = None,
    out: Any = None,
) -> int:
    """Send the messages in order; print one line per answer; the exit status."""
    stream = out if out is not None else sys.stdout
    status = EXIT_OK
    client = MllpClient(host, port, ssl=tls, timeout_s=timeout_s, server_hostname=server_hostname)
    try:
        await client.connect()
    except (MllpError, OSError) as exc:
        sys.stderr.write(f"pumpguard send: cannot connect to {host}:{port}: {exc}\n")
        return EXIT_USAGE
    try:
        for msg in messages:
            answer, why = await _send_one(client, msg, resend)
            control = _control_id(msg.data)
            if answer is None:
                tries = f" (sent {resend + 1} times)" if resend else ""
                stream.write(f"{control}\t-\tno answer{tries}: {why}\n")
                status = EXIT_REFUSED
                continue
            try:
                summary = read_ack(answer)
            except ParseError as exc:
                stream.write(f"{control}\t?\tanswer is not an ACK: {exc}\n")
                status = EXIT_REFUSED
                continue
            stream.write(f"{summary.control_id or control}\t{summary.code}\t{summary.text}\n")
            if summary.code not in ("AA", "CA"):
                status = EXIT_REFUSED
    finally:
        await client.close()
    return status


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.tls_ca or args.tls_cert):
        return None
    return client_ssl_context(args.tls_ca, cert=args.tls_cert, key=args.tls_key)


def run(args: argparse.Namespace) -> int:
    """The ``send`` command: read every file first (a bad one sends nothing), then send."""
    messages: list[Outgoing] = []
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            sys.stderr.write(f"pumpguard send: cannot read {path}: {exc}\n")
            return EXIT_USAGE
        found, skipped = outgoing(path, data, raw=args.raw)
        for line in skipped:
            sys.stderr.write(f"pumpguard send: {line}\n")
        messages += found
    if not messages:
        sys.stderr.write("pumpguard send: no HL7 message in the files; nothing sent\n")
        return EXIT_USAGE
    try:
        tls = _tls(args)
    except (OSError, ssl.SSLError) as exc:
        sys.stderr.write(f"pumpguard send: TLS files do not load: {exc}\n")
        return EXIT_USAGE
    host, port = args.to
    return asyncio.run(
        send_all(
            messages,
            host,
            port,
            tls=tls,
            timeout_s=args.timeout,
            resend=max(args.resend, 0),
            server_hostname=args.tls_server_name,
        )
    )
