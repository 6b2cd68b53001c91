"""Sink transports: what each one sends, and which failures are worth another try."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hl7
import pytest
import structlog
from aiohttp import web
from pumpguard.adapters.transports import (
    Deliverable,
    DeliveryError,
    JsonlFileTransport,
    MllpAlarmTransport,
    SinkRejected,
    SinkUnavailable,
    StructlogTransport,
    WebhookTransport,
    ack_code,
    read_deduplicated,
)
from pumpguard.engine.findings import (
    Finding,
    RulePackRef,
    Severity,
    Withdrawal,
    make_finding_id,
    make_withdrawal_id,
    rfc3339,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PACK = RulePackRef(name="blincyto", version="0.1.0", sha256="0" * 64, edition="seed")


def finding(n: int = 1, severity: Severity = Severity.CRITICAL) -> Finding:
    ts = T0 + timedelta(minutes=n)
    return Finding(
        finding_id=make_finding_id("BLN-RATE-01", "P-1", [f"e-{n}"], rfc3339(ts)),
        code="RATE_MISMATCH",
        rule_id="BLN-RATE-01",
        severity=severity,
        patient_id="P-1",
        ts=ts,
        message="Programmed rate 10 mL/h differs from the bag label's 5 mL/h.",
        action="Stop and reprogram the pump.",
        evidence=[f"e-{n}"],
        citation="R-RATE",
        rule_pack=PACK,
        requirement="R-RATE",
    )


def withdrawal(f: Finding) -> Withdrawal:
    ts = f.ts + timedelta(hours=2)
    return Withdrawal(
        withdraws=f.finding_id,
        ts=ts,
        reason="A late pump record shows the rate was 5 mL/h.",
        evidence=["late-1"],
        rule_pack=PACK,
        withdrawal_id=make_withdrawal_id(f.finding_id, rfc3339(ts), ["late-1"]),
        patient_id=f.patient_id,
        code=f.code,
        rule_id=f.rule_id,
        severity=f.severity,
    )


class TestDeliverable:
    def test_finding_and_withdrawal_round_trip_through_their_json(self) -> None:
        f = finding()
        w = withdrawal(f)
        for record, kind, rid in ((f, "finding", f.finding_id), (w, "withdrawal", w.withdrawal_id)):
            item = Deliverable.from_json(record.to_json())
            assert (item.kind, item.id, item.record) == (kind, rid, record)
            assert item == Deliverable.of(record)

    @pytest.mark.parametrize("text", ["{broken", "[1, 2]", '{"finding_id": "F-1"}'])
    def test_text_that_is_neither_is_refused_for_good(self, text: str) -> None:
        with pytest.raises(SinkRejected) as info:
            Deliverable.from_json(text)
        assert not info.value.retryable


class TestJsonlFile:
    @pytest.mark.asyncio
    async def test_each_record_is_one_line_and_a_retry_is_read_once(self, tmp_path: Path) -> None:
        path = tmp_path / "findings.jsonl"
        sink = JsonlFileTransport(path)
        f = finding()
        w = withdrawal(f)
        for record in (f, f, w):  # the second f: a retry after a lost outbox update
            await sink.deliver(Deliverable.of(record))
        assert path.read_text().splitlines() == [f.to_json(), f.to_json(), w.to_json()]
        read = read_deduplicated(path)
        assert [r.id for r in read.records] == [f.finding_id, w.withdrawal_id]
        assert (read.duplicates, read.bad_lines) == (1, [])

    @pytest.mark.asyncio
    async def test_a_torn_last_line_is_closed_and_reported_not_glued(self, tmp_path: Path) -> None:
        path = tmp_path / "findings.jsonl"
        f = finding()
        path.write_text(f.to_json()[:40])  # a crash in the middle of a write
        await JsonlFileTransport(path).deliver(Deliverable.of(f))
        read = read_deduplicated(path)
        assert [r.id for r in read.records] == [f.finding_id]
        assert [n for n, _ in read.bad_lines] == [1]

    @pytest.mark.asyncio
    async def test_unwritable_file_is_retryable(self, tmp_path: Path) -> None:
        sink = JsonlFileTransport(tmp_path / "missing-dir" / "findings.jsonl")
        with pytest.raises(SinkUnavailable) as info:
            await sink.deliver(Deliverable.of(finding()))
        assert info.value.retryable
        assert "missing-dir" in info.value.message


class TestStructlog:
    @pytest.mark.asyncio
    async def test_one_json_line_per_record_at_the_findings_level(self) -> None:
        out = io.StringIO()
        log = structlog.wrap_logger(
            structlog.PrintLogger(out),
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        )
        sink = StructlogTransport(log)
        f = finding(severity=Severity.HIGH)
        await sink.deliver(Deliverable.of(f))
        await sink.deliver(Deliverable.of(withdrawal(f)))
        first, second = (json.loads(line) for line in out.getvalue().splitlines())
        assert (first["event"], first["level"], first["finding_id"]) == (
            "finding",
            "error",
            f.finding_id,
        )
        assert (second["event"], second["level"], second["withdraws"]) == (
            "withdrawal",
            "error",
            f.finding_id,
        )
        assert second["delivery_id"] == withdrawal(f).withdrawal_id


# --- webhook against a real aiohttp server on 127.0.0.1:0 -----------------------------------


@dataclass
class Hook:
    """A webhook receiver: records requests, answers with the queued statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hang: asyncio.Event | None = None
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if self.hang is not None:
            await self.hang.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(
            status=status, text="nope" if status >= 300 else "ok", headers=self.headers
        )


@asynccontextmanager
async def serving(hook: Hook) -> AsyncIterator[Hook]:
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    hook.url = f"http://{host}:{port}/hook"
    try:
        yield hook
    finally:
        if hook.hang is not None:
            hook.hang.set()
        await runner.cleanup()


class TestWebhook:
    @pytest.mark.asyncio
    async def test_json_post_carries_the_idempotency_key_token_and_the_record(self) -> None:
        f = finding()
        async with serving(Hook()) as hook:
            sink = WebhookTransport(hook.url, token="s3cret")
            await sink.deliver(Deliverable.of(f))
            await sink.aclose()
        headers, body = hook.requests[0]
        assert headers["Idempotency-Key"] == f.finding_id
        assert headers["Authorization"] == "Bearer s3cret"
        assert headers["Content-Type"] == "application/json"
        assert body.decode() == f.to_json()

    @pytest.mark.asyncio
    async def test_fhir_post_sends_detected_issues_and_the_withdrawal_in_error(self) -> None:
        f = finding()
        w = withdrawal(f)
        async with serving(Hook()) as hook:
            sink = WebhookTransport(hook.url, format="fhir")
            await sink.deliver(Deliverable.of(f))
            await sink.deliver(Deliverable.of(w))
            await sink.aclose()
        (h1, b1), (h2, b2) = hook.requests
        issue, gone = json.loads(b1), json.loads(b2)
        assert h1["Content-Type"] == "application/fhir+json"
        assert (issue["resourceType"], issue["status"], issue["id"]) == (
            "DetectedIssue",
            "final",
            f.finding_id,
        )
        assert (gone["status"], gone["id"]) == ("entered-in-error", f.finding_id)
        assert (h1["Idempotency-Key"], h2["Idempotency-Key"]) == (f.finding_id, w.withdrawal_id)
        assert "Authorization" not in h1

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("status", "retryable"),
        [
            (400, False),
            (401, False),
            (404, False),
            (302, False),
            (408, True),
            (429, True),
            (500, True),
            (503, True),
        ],
    )
    async def test_status_decides_retry_or_dead_letter(self, status: int, retryable: bool) -> None:
        async with serving(Hook(statuses=[status])) as hook:
            sink = WebhookTransport(hook.url)
            with pytest.raises(DeliveryError) as info:
                await sink.deliver(Deliverable.of(finding()))
            await sink.aclose()
        assert info.value.retryable is retryable
        assert f"HTTP {status}" in info.value.message

    @pytest.mark.asyncio
    async def test_2xx_other_than_200_is_delivered(self) -> None:
        async with serving(Hook(statuses=[201, 204])) as hook:
            sink = WebhookTransport(hook.url)
            await sink.deliver(Deliverable.of(finding(1)))
            await sink.deliver(Deliverable.of(finding(2)))
            await sink.aclose()
        assert len(hook.requests) == 2

    @pytest.mark.asyncio
    async def test_retry_after_seconds_are_passed_on(self) -> None:
        async with serving(Hook(statuses=[429], headers={"Retry-After": "30"})) as hook:
            sink = WebhookTransport(hook.url)
            with pytest.raises(SinkUnavailable) as info:
                await sink.deliver(Deliverable.of(finding()))
            await sink.aclose()
        assert info.value.retry_after_s == 30.0

    @pytest.mark.asyncio
    async def test_a_receiver_that_does_not_answer_times_out_retryably(self) -> None:
        async with serving(Hook(hang=asyncio.Event())) as hook:
            sink = WebhookTransport(hook.url, timeout_s=0.2)
            with pytest.raises(SinkUnavailable, match="timed out"):
                await sink.deliver(Deliverable.of(finding()))
            await sink.aclose()

    @pytest.mark.asyncio
    async def test_nobody_listening_is_retryable(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sink = WebhookTransport(f"http://127.0.0.1:{port}/hook")
        with pytest.raises(SinkUnavailable):
            await sink.deliver(Deliverable.of(finding()))
        await sink.aclose()


# --- ORU^R40 over MLLP with a fake client --------------------------------------------------


def ack_for(message: bytes, code: str, text: str = "", control: str | None = None) -> bytes:
    msh = hl7.parse(message.decode()).segment("MSH")
    cid = str(msh[10]) if control is None else control
    header = "MSH|^~\\&|ACM|ACM|PUMPGUARD|PUMPGUARD|20260302080000+0000||ACK^R40^ACK|A1|P|2.6"
    return f"{header}\rMSA|{code}|{cid}|{text}\r".encode()


@dataclass
class FakeLink:
    answer: Callable[[bytes], bytes]
    sent: list[bytes] = field(default_factory=list)
    closed: bool = False
    broken: bool = False

    async def send(self, message: bytes) -> bytes:
        if self.broken:
            raise ConnectionResetError("connection reset by peer")
        self.sent.append(message)
        return self.answer(message)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Links:
    """A client factory that hands out FakeLinks answering with the queued codes."""

    codes: list[str]
    made: list[FakeLink] = field(default_factory=list)

    def answer(self, message: bytes) -> bytes:
        return ack_for(message, self.codes.pop(0) if self.codes else "AA", "busy")

    async def connect(self) -> FakeLink:
        link = FakeLink(self.answer)
        self.made.append(link)
        return link


class TestMllpAlarm:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("code", ["AA", "CA"])
    async def test_accepting_ack_is_delivered(self, code: str) -> None:
        links = Links([code])
        f = finding()
        sink = MllpAlarmTransport(links.connect)
        await sink.deliver(Deliverable.of(f))
        sent = hl7.parse(links.made[0].sent[0].decode())
        assert str(sent.segment("MSH")[9]) == "ORU^R40^ORU_R40"
        assert str(sent.segment("MSH")[10]) == f.finding_id

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("code", "retryable"), [("AE", True), ("CE", True), ("AR", False), ("CR", False)]
    )
    async def test_error_ack_is_retried_and_reject_ack_is_dead(
        self, code: str, retryable: bool
    ) -> None:
        sink = MllpAlarmTransport(Links([code]).connect)
        with pytest.raises(DeliveryError) as info:
            await sink.deliver(Deliverable.of(finding()))
        assert info.value.retryable is retryable
        assert code in info.value.message
        assert "busy" in info.value.message

    @pytest.mark.asyncio
    async def test_withdrawal_is_sent_as_the_alerts_end(self) -> None:
        links = Links([])
        f = finding()
        w = withdrawal(f)
        sink = MllpAlarmTransport(links.connect)
        await sink.deliver(Deliverable.of(f))
        await sink.deliver(Deliverable.of(w))
        assert len(links.made) == 1  # one connection, kept
        end = hl7.parse(links.made[0].sent[1].decode())
        assert str(end.segment("MSH")[10]) == w.withdrawal_id
        assert str(end.segment("OBR")[3][0][0]) == f.finding_id
        assert "68481^MDC_ATTR_EVENT_PHASE^MDC" in str(end.segments("OBX")[2][3])
        assert str(end.segments("OBX")[2][5]) == "end"

    @pytest.mark.asyncio
    async def test_broken_connection_is_retryable_and_the_next_try_reconnects(self) -> None:
        links = Links([])
        sink = MllpAlarmTransport(links.connect)
        await sink.deliver(Deliverable.of(finding(1)))
        links.made[0].broken = True
        with pytest.raises(SinkUnavailable, match="reset"):
            await sink.deliver(Deliverable.of(finding(2)))
        assert links.made[0].closed
        await sink.deliver(Deliverable.of(finding(2)))
        assert len(links.made) == 2

    @pytest.mark.asyncio
    async def test_ack_for_another_message_is_not_taken_as_delivered(self) -> None:
        async def connect() -> FakeLink:
            return FakeLink(lambda m: ack_for(m, "AA", control="SOMETHING-ELSE"))

        sink = MllpAlarmTransport(connect)
        with pytest.raises(SinkUnavailable, match="SOMETHING-ELSE"):
            await sink.deliver(Deliverable.of(finding()))

    @pytest.mark.asyncio
    async def test_silent_alarm_manager_times_out_retryably(self) -> None:
        class Silent(FakeLink):
            async def send(self, message: bytes) -> bytes:
                await asyncio.Event().wait()
                raise AssertionError("unreachable")

        async def connect() -> FakeLink:
            return Silent(lambda m: b"")

        sink = MllpAlarmTransport(connect, timeout_s=0.05)
        with pytest.raises(SinkUnavailable, match="timed out"):
            await sink.deliver(Deliverable.of(finding()))

    def test_unreadable_ack_is_retryable(self) -> None:
        for ack in (b"", b"garbage", b"MSH|^~\\&|X\rPID|1\r"):
            with pytest.raises(SinkUnavailable):
                ack_code(ack)

    def test_ack_fields_are_read_with_the_messages_own_separator(self) -> None:
        ack = b"\x0bMSH#^~\\&#ACM\rMSA#AE#F-1#queue full\r\x1c\r"
        assert ack_code(ack) == ("AE", "F-1", "queue full")
