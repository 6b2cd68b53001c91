"""Sink transports for the live service: how one finding or withdrawal leaves the process.

Formats live in :mod:`pumpguard.adapters.sinks`; a transport only moves the
rendered bytes and says, when it fails, whether trying again could help. The
outbox workers (``pumpguard.service.delivery``) own the policy: order, retries,
back-off, dead letters. Delivery is at-least-once, so every transport carries the
record's id (``finding_id`` or ``withdrawal_id``) for the receiver to de-duplicate
on: the ``Idempotency-Key`` header, MSH-10, or the ``id`` a JSONL reader keys on.

Errors (under :class:`~pumpguard.engine.errors.SinkError`)::

    SinkError
    └── DeliveryError        one attempt failed; ``retryable`` says whether another may succeed
        ├── SinkUnavailable  retryable: down, timed out, 5xx, 408/429, ACK AE/CE
        └── SinkRejected     not retryable: other 4xx, ACK AR/CR, a record the format cannot carry
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from ssl import SSLContext
from typing import Any, Literal, Protocol, runtime_checkable

import aiohttp
from pumpguard.adapters.hl7v2.writer import UnsupportedEvent
from pumpguard.adapters.sinks import (
    detected_issue,
    detected_issue_withdrawal,
    oru_r40,
    oru_r40_withdrawal,
)
from pumpguard.engine.errors import PumpguardError, SinkError
from pumpguard.engine.findings import Finding, Withdrawal
from pydantic import ValidationError

__all__ = [
    "AlarmLink",
    "BatchTransport",
    "Deliverable",
    "DeliveryError",
    "JsonlFileTransport",
    "JsonlRead",
    "MllpAlarmTransport",
    "SinkRejected",
    "SinkUnavailable",
    "StructlogTransport",
    "Transport",
    "WebhookFormat",
    "WebhookTransport",
    "ack_code",
    "read_deduplicated",
]

Kind = Literal["finding", "withdrawal"]


class DeliveryError(SinkError):
    """One delivery attempt failed; ``retryable`` tells the outbox whether to try again."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class SinkUnavailable(DeliveryError):
    """The sink could not take it now (down, slow, overloaded): another attempt may succeed."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message, retryable=True, retry_after_s=retry_after_s)


class SinkRejected(DeliveryError):
    """The sink refused this record, or it cannot be rendered: the same bytes will fail again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class Deliverable:
    """One outbox item as the transports see it: the record, its id and its JSON text."""

    kind: Kind
    id: str
    json: str
    record: Finding | Withdrawal

    @classmethod
    def of(cls, record: Finding | Withdrawal) -> Deliverable:
        if isinstance(record, Withdrawal):
            return cls("withdrawal", record.withdrawal_id, record.to_json(), record)
        return cls("finding", record.finding_id, record.to_json(), record)

    @classmethod
    def from_json(cls, text: str) -> Deliverable:
        """Parse a journaled finding or withdrawal (a withdrawal is the one with ``withdraws``).

        Raises :class:`SinkRejected` for text that is neither: retrying cannot fix it.
        """
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise SinkRejected(f"outbox item is not a JSON object: {text[:80]!r}")
            if "withdraws" in data:
                return cls(
                    "withdrawal", data["withdrawal_id"], text, Withdrawal.model_validate(data)
                )
            return cls("finding", data["finding_id"], text, Finding.model_validate(data))
        except (ValueError, ValidationError) as exc:
            raise SinkRejected(f"outbox item is not a finding or a withdrawal: {exc}") from exc


class Transport(Protocol):
    """Moves one record to one sink; raises :class:`DeliveryError` when that failed."""

    async def deliver(self, item: Deliverable) -> None: ...

    async def aclose(self) -> None:
        """Release connections and files; safe to call twice."""


@runtime_checkable
class BatchTransport(Transport, Protocol):
    """A transport that can also move several records in one go (one write, one fsync).

    All or nothing as far as the outbox knows: when it raises, the outbox tries the
    items one at a time, so a partial write only means a duplicate the reader drops.
    """

    async def deliver_batch(self, items: Sequence[Deliverable]) -> None: ...


# --- JSONL file ---------------------------------------------------------------------------


class JsonlFileTransport:
    """Appends one JSON line per record and fsyncs it before reporting it delivered.

    A retry after a crash between the write and the outbox update appends the line
    again, so readers de-duplicate by id (:func:`read_deduplicated`). A line torn
    by a crash is closed with a newline before the next append, so it never glues
    itself to a good one.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # One append at a time: a timed-out append may still be writing on its thread
        # when the outbox retries, and the torn-line check must see the file whole.
        self._lock = threading.Lock()

    async def deliver(self, item: Deliverable) -> None:
        await self.deliver_batch((item,))

    async def deliver_batch(self, items: Sequence[Deliverable]) -> None:
        """Every item's line, one fsync for them all (a finding burst costs one disk flush)."""
        try:
            await asyncio.to_thread(self._append, "\n".join(item.json for item in items))
        except OSError as exc:
            msg = f"cannot append to {self.path}: {exc.strerror or exc}"
            raise SinkUnavailable(msg) from exc

    def _append(self, text: str) -> None:
        data = text.encode("utf-8") + b"\n"
        with self._lock, self.path.open("ab+") as fh:
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    data = b"\n" + data
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class JsonlRead:
    """What a JSONL sink file holds once de-duplicated, and what could not be read (where, why)."""

    records: list[Deliverable]
    duplicates: int
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


def read_deduplicated(path: str | Path) -> JsonlRead:
    """The records of a JSONL sink file in first-seen order, each id once."""
    seen: set[str] = set()
    records: list[Deliverable] = []
    duplicates = 0
    bad: list[tuple[int, str]] = []
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = Deliverable.from_json(line.rstrip("\n"))
            except SinkRejected as exc:
                bad.append((lineno, exc.message))
                continue
            if item.id in seen:
                duplicates += 1
                continue
            seen.add(item.id)
            records.append(item)
    return JsonlRead(records, duplicates, bad)


# --- structlog ------------------------------------------------------------------------------

_LOG_LEVEL = {"critical": "critical", "high": "error", "medium": "warning"}


class StructlogTransport:
    """One structured log line per record ("finding" or "withdrawal"), leveled by severity."""

    def __init__(self, logger: Any) -> None:
        self._log = logger

    async def deliver(self, item: Deliverable) -> None:
        data = item.record.model_dump(mode="json")
        # A withdrawal logs at its finding's level: whoever saw the finding sees its end.
        level = _LOG_LEVEL.get(item.record.severity.value, "info")
        try:
            getattr(self._log, level)(item.kind, delivery_id=item.id, **data)
        except OSError as exc:
            raise SinkUnavailable(f"log stream failed: {exc}") from exc

    async def aclose(self) -> None:
        return None


# --- webhook ------------------------------------------------------------------------------

WebhookFormat = Literal["json", "fhir"]


class WebhookTransport:
    """POSTs the record as JSON (or a FHIR DetectedIssue) with ``Idempotency-Key: <id>``.

    2xx is delivered. 408, 429 and 5xx, time-outs and connection errors are worth
    another try (``Retry-After`` is passed on); any other status is a refusal that
    will not change by resending, so the item is dead-lettered. Redirects are not
    followed: a POST must reach the configured URL itself.
    """

    def __init__(
        self,
        url: str,
        *,
        format: WebhookFormat = "json",
        token: str | None = None,
        timeout_s: float = 10.0,
        ssl: SSLContext | None = None,
    ) -> None:
        if format not in ("json", "fhir"):
            msg = f"webhook format must be 'json' or 'fhir', not {format!r}"
            raise ValueError(msg)
        self.url = url
        self.format = format
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    def body(self, item: Deliverable) -> tuple[bytes, str]:
        """The request body and its content type for ``item``."""
        if self.format == "json":
            return item.json.encode("utf-8"), "application/json"
        try:
            if isinstance(item.record, Withdrawal):
                resource = detected_issue_withdrawal(item.record)
            else:
                resource = detected_issue(item.record)
        except SinkError as exc:
            raise SinkRejected(exc.message) from exc
        return json.dumps(resource, ensure_ascii=False).encode("utf-8"), "application/fhir+json"

    async def deliver(self, item: Deliverable) -> None:
        data, content_type = self.body(item)
        headers = {"Content-Type": content_type, "Idempotency-Key": item.id}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                self.url,
                data=data,
                headers=headers,
                ssl=self._ssl if self._ssl is not None else True,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                text = (await resp.text(errors="replace"))[:200]
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise SinkUnavailable(f"webhook {self.url}: timed out") from exc
        except aiohttp.ClientError as exc:
            raise SinkUnavailable(f"webhook {self.url}: {exc.__class__.__name__}: {exc}") from exc
        _check_status(self.url, status, text, retry_after)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _check_status(url: str, status: int, text: str, retry_after: float | None) -> None:
    if 200 <= status < 300:
        return
    msg = f"webhook {url}: HTTP {status} {text}".rstrip()
    if status in (408, 429) or status >= 500:
        raise SinkUnavailable(msg, retry_after_s=retry_after)
    raise SinkRejected(msg)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is ignored: the back-off applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


# --- HL7 ORU^R40 over MLLP -------------------------------------------------------------------


class AlarmLink(Protocol):
    """An MLLP connection to an alarm manager (``adapters.mllp.MllpClient`` fits)."""

    async def send(self, message: bytes) -> bytes:
        """Frame and send one message; return the ACK message (unframed)."""
        ...

    async def close(self) -> None: ...


class MllpAlarmTransport:
    """ORU^R40 to an alarm manager over MLLP, delivered only once its ACK says so.

    MSA-1 ``AA``/``CA`` is delivered; ``AE``/``CE`` (an error on its side) is tried
    again; ``AR``/``CR`` is a refusal and dead-letters the item. An ACK for another
    control id, an unreadable one, or a broken connection is retried on a fresh
    connection. One connection at a time: ACM wants an alarm's start before its end.
    """

    def __init__(
        self, connect: Callable[[], Awaitable[AlarmLink]], *, timeout_s: float = 10.0
    ) -> None:
        self._connect = connect
        self._timeout_s = timeout_s
        self._link: AlarmLink | None = None

    @staticmethod
    def render(item: Deliverable) -> bytes:
        try:
            if isinstance(item.record, Withdrawal):
                text = oru_r40_withdrawal(item.record)
            else:
                text = oru_r40(item.record)
        except (ValueError, UnsupportedEvent) as exc:
            raise SinkRejected(f"{item.kind} {item.id} cannot be written as HL7: {exc}") from exc
        return text.encode("utf-8")

    async def deliver(self, item: Deliverable) -> None:
        message = self.render(item)
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._link is None:
                    self._link = await self._connect()
                ack = await self._link.send(message)
        except (TimeoutError, OSError, EOFError, PumpguardError) as exc:
            await self._drop()
            detail = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise SinkUnavailable(f"alarm manager: {detail or exc.__class__.__name__}") from exc
        code, control, text = ack_code(ack)
        if control != item.id:
            await self._drop()
            raise SinkUnavailable(f"alarm manager acknowledged {control!r}, not {item.id!r}")
        if code in ("AA", "CA"):
            return
        msg = f"alarm manager answered {code}: {text}".rstrip(": ")
        if code in ("AE", "CE"):
            raise SinkUnavailable(msg)
        raise SinkRejected(msg)

    async def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(OSError):  # already broken: that is why it is dropped
                await link.close()

    async def aclose(self) -> None:
        await self._drop()


def ack_code(ack: bytes) -> tuple[str, str, str]:
    """MSA-1, MSA-2 and MSA-3 of an ACK; an unreadable ACK raises :class:`SinkUnavailable`."""
    text = ack.decode("utf-8", errors="replace").strip("\x0b\x1c\r\n")
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 4:
        raise SinkUnavailable(f"alarm manager sent no readable ACK: {text[:60]!r}")
    sep = segments[0][3]
    for seg in segments:
        fields = seg.split(sep)
        if fields[0] == "MSA" and len(fields) > 1:
            padded = [*fields, "", "", ""]
            return padded[1].upper(), padded[2], padded[3]
    raise SinkUnavailable(f"alarm manager ACK has no MSA segment: {text[:60]!r}")
