"""MLLP over TCP (optionally TLS): the listener pump gateways send HL7 v2 to, and a client.

Why not python-hl7's asyncio MLLP (``hl7.mllp``): its reader decodes ASCII
and parses before the caller sees a byte, so a UTF-8 name kills the handler
with no ACK, and MSH-18 cannot be honoured; it has no timeouts; past its
64 KiB limit it clears the buffer, losing both the frame boundary and the MSH
an ``AR`` needs; a lone end byte never matches its ``0x1C 0x0D`` separator. So
this module frames bytes itself (:class:`Framer`), on plain asyncio streams,
and leaves decoding to :mod:`pumpguard.adapters.hl7v2.live`; the tests drive
it with python-hl7's own ``mllp_send``.

The server's promises: one message in flight per connection (the next is not
read before its ACK is written), a bound on connections and on handler calls
running at once; an oversized message is answered ``AR`` and skipped to its
end byte, bytes between frames are answered ``AR`` naming them, and the
connection survives both; an idle connection or a frame left half-sent past
its time is closed and counted. No exception in a connection reaches the
server: every malformed input gets an answer or a counted close.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pumpguard.adapters.hl7v2.ack import ack
from pumpguard.adapters.hl7v2.framing import quote
from pumpguard.adapters.hl7v2.mllp_blocks import (
    START,
    CutOff,
    Frame,
    Framer,
    Garbage,
    Item,
    MiB,
    Oversize,
    frame,
)
from pumpguard.engine.errors import PumpguardError

__all__ = [
    "START",
    "Framer",
    "MllpClient",
    "MllpClosed",
    "MllpError",
    "MllpServer",
    "MllpTimeout",
    "ServerStats",
    "client_ssl_context",
    "exchange",
    "frame",
    "serve_mllp",
    "server_ssl_context",
]

log = structlog.get_logger("pumpguard.mllp")


def _log(level: str, event: str, **fields: object) -> None:
    """Log, never failing: a closed or broken log stream must not cost a peer its answer."""
    with contextlib.suppress(Exception):
        getattr(log, level)(event, **fields)


_READ = 65536

Handler = Callable[[bytes, str], Awaitable[bytes]]
"""Takes one unframed message and the peer ("host:port"), returns the unframed ACK
(b"" to send nothing, e.g. for an inbound ACK)."""


class MllpError(PumpguardError):
    """An MLLP exchange that did not complete (client side)."""


class MllpTimeout(MllpError):
    """No complete answer frame within the timeout."""


class MllpClosed(MllpError):
    """The peer closed the connection before answering."""


# ---------------------------------------------------------------------- server


@dataclass(slots=True)
class ServerStats:
    """What the listener did, each malformed input counted once where it was answered."""

    connections: int = 0
    refused: int = 0
    messages: int = 0
    oversize: int = 0
    garbage: int = 0
    cut_off: int = 0
    handler_errors: int = 0
    idle_closed: int = 0
    partial_closed: int = 0
    dropped: int = 0  # connections that ended on a socket error

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class _Limits:
    max_message_bytes: int
    idle_timeout_s: float
    partial_timeout_s: float


class MllpServer:
    """A running listener: ``port`` (the bound one), ``stats``, ``close()``/``wait_closed()``."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.busy: set[asyncio.Task[None]] = set()
        self.closing = False

    @property
    def port(self) -> int:
        sockets = self.server.sockets if self.server is not None else ()
        return int(sockets[0].getsockname()[1]) if sockets else 0

    def close(self) -> None:
        """Stop accepting; idle connections close now, busy ones after the ACK they owe."""
        self.closing = True
        if self.server is not None:
            self.server.close()
        for task in self.tasks - self.busy:
            task.cancel()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def __aenter__(self) -> MllpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def serve_mllp(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
    max_message_bytes: int = MiB,
    idle_timeout_s: float = 300.0,
    partial_timeout_s: float = 30.0,
    max_connections: int = 64,
    max_in_flight: int = 16,
    clock: Callable[[], datetime] = _utc_now,
) -> MllpServer:
    """Listen for MLLP on ``host:port`` (loopback and an OS-picked port by default).

    ``clock`` stamps the ACKs the server writes itself (oversize, garbage, cut off,
    handler failure); ``max_in_flight`` bounds handler calls across connections.
    """
    stats = ServerStats()
    limits = _Limits(max_message_bytes, idle_timeout_s, partial_timeout_s)
    gate = asyncio.Semaphore(max_in_flight)
    srv = MllpServer(stats)

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(srv.tasks) >= max_connections or srv.closing:
            stats.refused += 1
            writer.close()
            return
        srv.tasks.add(task)
        stats.connections += 1
        conn = _Connection(reader, writer, handler, limits, stats, clock, gate, srv, task)
        try:
            await conn.run()
        finally:
            srv.tasks.discard(task)
            srv.busy.discard(task)

    srv.server = await asyncio.start_server(
        connected, host, port, ssl=ssl, ssl_handshake_timeout=partial_timeout_s if ssl else None
    )
    return srv


class _Connection:
    """One peer: read, frame, answer, in order, one message at a time."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        limits: _Limits,
        stats: ServerStats,
        clock: Callable[[], datetime],
        gate: asyncio.Semaphore,
        server: MllpServer,
        task: asyncio.Task[None],
    ) -> None:
        self.reader, self.writer, self.handler = reader, writer, handler
        self.limits, self.stats, self.clock, self.gate = limits, stats, clock, gate
        self.server, self.task = server, task
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.framer = Framer(limits.max_message_bytes)
        self.block_started: float | None = None

    async def run(self) -> None:
        try:
            await self._loop()
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            self.stats.dropped += 1
            _log("info", "mllp.dropped", peer=self.peer, error=str(exc))
        except asyncio.CancelledError:
            pass  # the server is closing
        except Exception:  # never let one connection's failure reach the server
            self.stats.dropped += 1
            _log("exception", "mllp.connection_failed", peer=self.peer)
        finally:
            self.writer.close()
            # A second cancel can land here while closing; the connection is over either way,
            # and letting it out makes asyncio log a traceback for a normal stop.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.writer.wait_closed()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.server.closing:
            timeout, why = self._timeout(loop.time())
            try:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(_READ)
            except TimeoutError:
                if not await self._timed_out(why):
                    return
                continue
            if not data:
                return
            was_inside = self.framer.inside
            items = self.framer.feed(data)
            if self.framer.inside and (not was_inside or items):
                self.block_started = loop.time()
            for item in items:
                await self._answer(item)

    def _timeout(self, now: float) -> tuple[float, str]:
        if self.framer.inside and self.block_started is not None:
            left = self.block_started + self.limits.partial_timeout_s - now
            return max(left, 0.0), "partial"
        if self.framer.garbage_pending:
            return self.limits.partial_timeout_s, "garbage"
        return self.limits.idle_timeout_s, "idle"

    async def _timed_out(self, why: str) -> bool:
        """A timeout: answer pending garbage and go on, or close (False)."""
        if why == "garbage":
            junk = self.framer.flush_garbage()
            if junk is not None:
                await self._answer(junk)
            return True
        if why == "partial":
            self.stats.partial_closed += 1
            _log(
                "info",
                "mllp.half_sent_closed",
                peer=self.peer,
                pending_bytes=self.framer.pending(),
                timeout_s=self.limits.partial_timeout_s,
            )
        else:
            self.stats.idle_closed += 1
        return False

    async def _answer(self, item: Item) -> None:
        if isinstance(item, Frame):
            reply = await self._handle(item.data)
        else:
            reply = self._refusal(item)
        if reply:
            self.writer.write(frame(reply))
            await self.writer.drain()

    async def _handle(self, data: bytes) -> bytes:
        self.stats.messages += 1
        self.server.busy.add(self.task)
        try:
            async with self.gate:
                return await self.handler(data, self.peer)
        except Exception as exc:
            self.stats.handler_errors += 1
            _log("exception", "mllp.handler_failed", peer=self.peer)
            text = f"the message could not be processed ({type(exc).__name__}); send it again"
            return ack(data, "AE", text, error_code="207", now=self.clock())
        finally:
            self.server.busy.discard(self.task)

    def _refusal(self, item: Oversize | Garbage | CutOff) -> bytes:
        if isinstance(item, Oversize):
            self.stats.oversize += 1
            text = (
                f"message of {item.size:,} bytes is over the {self.limits.max_message_bytes:,}"
                "-byte limit; discarded"
            )
            return ack(item.head, "AR", text, error_code="104", now=self.clock())
        if isinstance(item, CutOff):
            self.stats.cut_off += 1
            text = (
                f"block of {item.size:,} bytes had no end byte (0x1C) before the next start "
                "byte (0x0B): cut off; not read"
            )
            return ack(item.head, "AR", text, error_code="100", now=self.clock())
        self.stats.garbage += 1
        text = (
            f"{item.size:,} bytes outside an MLLP block (no start byte 0x0B before them): "
            f"{quote(item.head, 80)}; not read"
        )
        return ack(None, "AR", text, error_code="100", now=self.clock())


# ---------------------------------------------------------------------- TLS


def server_ssl_context(
    cert: str | Path, key: str | Path, *, client_ca: str | Path | None = None
) -> ssl_module.SSLContext:
    """TLS for the listener from PEM cert and key paths; with ``client_ca``, clients must
    present a certificate it signed (mutual TLS)."""
    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl_module.CERT_REQUIRED
    return ctx


def client_ssl_context(
    ca: str | Path | None = None,
    *,
    cert: str | Path | None = None,
    key: str | Path | None = None,
) -> ssl_module.SSLContext:
    """TLS for a client: the server checked against ``ca`` (else the system's CAs)."""
    ctx = ssl_module.create_default_context(cafile=str(ca) if ca is not None else None)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


# ---------------------------------------------------------------------- client


class MllpClient:
    """One connection to an MLLP peer; :meth:`send` frames a message and waits for its answer.

    Use as ``async with MllpClient(host, port) as c: reply = await c.send(msg)``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        timeout_s: float = 10.0,
        max_message_bytes: int = MiB,
        server_hostname: str | None = None,
    ) -> None:
        self.host, self.port, self.ssl, self.timeout_s = host, port, ssl, timeout_s
        self.server_hostname = server_hostname
        self.max = max_message_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._framer = Framer(max_message_bytes)
        self._ready: list[Item] = []

    async def connect(self) -> None:
        hostname = self.server_hostname if self.ssl is not None else None
        try:
            async with asyncio.timeout(self.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, server_hostname=hostname
                )
        except TimeoutError as exc:
            msg = f"no connection to {self.host}:{self.port} within {self.timeout_s}s"
            raise MllpTimeout(msg) from exc
        self._framer = Framer(self.max)
        self._ready = []

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def __aenter__(self) -> MllpClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, message: bytes) -> bytes:
        """Send one unframed message; the unframed answer (MllpTimeout, MllpClosed otherwise)."""
        if self._writer is None:
            await self.connect()
        if self._writer is None or self._reader is None:
            raise MllpClosed(f"no connection to {self.host}:{self.port}")
        self._writer.write(frame(message))
        await self._writer.drain()
        return await self._answer(self._reader)

    async def _answer(self, reader: asyncio.StreamReader) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    while self._ready:
                        item = self._ready.pop(0)
                        if isinstance(item, Frame):
                            return item.data
                        _log("warning", "mllp.client_unexpected", item=type(item).__name__)
                    data = await reader.read(_READ)
                    if not data:
                        msg = f"{self.host}:{self.port} closed the connection before answering"
                        raise MllpClosed(msg)
                    self._ready += self._framer.feed(data)
        except TimeoutError as exc:
            msg = f"no answer from {self.host}:{self.port} within {self.timeout_s}s"
            raise MllpTimeout(msg) from exc


async def exchange(
    host: str,
    port: int,
    messages: Iterable[bytes],
    *,
    ssl: ssl_module.SSLContext | None = None,
    timeout_s: float = 10.0,
) -> list[bytes]:
    """Send each message on one connection, in order; their answers."""
    async with MllpClient(host, port, ssl=ssl, timeout_s=timeout_s) as client:
        return [await client.send(m) for m in messages]
