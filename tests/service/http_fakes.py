"""An in-memory journal for the HTTP API's tests, and a server fixture's pieces.

The fake keeps the journal's contract as the API relies on it: a dedupe key seen before
stores nothing new (a resend with other content is a conflict, kept aside), rejects are
stored with no key, ``append`` resolves only when its "commit" does (``gate``), and
``findings`` filters by patient, at-least severity and time, in time order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ssl import SSLContext
from typing import Any

import aiohttp
import structlog
from pumpguard.engine.clock import ManualClock
from pumpguard.engine.findings import Finding, RulePackRef, Severity, make_finding_id
from pumpguard.service.http import (
    HealthReport,
    HttpDeps,
    InboundRecord,
    PatientView,
    make_app,
    start_http,
)
from pumpguard.service.metrics import Metrics


@dataclass(frozen=True)
class FakeAppended:
    message_seq: int
    position: int | None
    duplicate: bool
    original: InboundRecord | None
    conflict: bool = False


@dataclass(frozen=True)
class FakeStoredFinding:
    finding: Finding
    withdrawn: bool = False
    withdrawn_by: str | None = None


@dataclass(frozen=True)
class FakeBacklog:
    sink: str
    pending: int
    oldest_age_s: float | None


@dataclass
class FakeJournal:
    messages: list[InboundRecord] = field(default_factory=list)
    resends: list[InboundRecord] = field(default_factory=list)
    stored_findings: list[FakeStoredFinding] = field(default_factory=list)
    sinks: dict[str, FakeBacklog] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    """When set, appends resolve only after the test sets it (a commit that takes time)."""
    called: asyncio.Event = field(default_factory=asyncio.Event)
    fail_with: Exception | None = None
    backlog_calls: list[float | None] = field(default_factory=list)

    async def append(self, inbound: Any) -> FakeAppended:
        assert isinstance(inbound, InboundRecord)
        result = self._store(inbound)  # enqueued at once, in call order, like the real one
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return result

    def _store(self, inbound: InboundRecord) -> FakeAppended:
        if inbound.dedupe_key is not None:
            for seq, original in enumerate(self.messages, start=1):
                if original.dedupe_key == inbound.dedupe_key:
                    self.resends.append(inbound)
                    conflict = original.content_sha256 != inbound.content_sha256
                    return FakeAppended(seq, None, True, original, conflict)
        self.messages.append(inbound)
        position = len(self.messages) if inbound.events else None
        return FakeAppended(len(self.messages), position, False, None)

    def findings(
        self,
        *,
        patient_id: str | None = None,
        min_severity: Severity | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> list[FakeStoredFinding]:
        rows = [
            s
            for s in self.stored_findings
            if (patient_id is None or s.finding.patient_id == patient_id)
            and (min_severity is None or s.finding.severity.rank >= min_severity.rank)
            and (since is None or s.finding.ts.timestamp() >= since)
        ]
        rows.sort(key=lambda s: (s.finding.ts, s.finding.finding_id))
        return rows[:limit]

    def backlog(self, now: float | None = None) -> dict[str, FakeBacklog]:
        self.backlog_calls.append(now)
        return dict(self.sinks)


T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PACK = RulePackRef(name="blincyto", version="1", sha256="0" * 64, edition="test")


def make_finding(patient_id: str, severity: Severity, at_h: float, code: str = "X") -> Finding:
    """A finding as the engine would journal it (only the fields the API filters on vary)."""
    ts = T0 + timedelta(hours=at_h)
    return Finding(
        finding_id=make_finding_id(code, patient_id, [f"{patient_id}-e"], ts.isoformat()),
        code=code,
        rule_id=f"rule.{code.lower()}",
        severity=severity,
        patient_id=patient_id,
        ts=ts,
        message="m",
        action="a",
        evidence=[f"{patient_id}-e"],
        citation="c",
        rule_pack=PACK,
        requirement="r",
    )


def event_json(event_id: str = "e1", **overrides: Any) -> dict[str, Any]:
    """A valid canonical event (a weight) as JSON-shaped data."""
    data: dict[str, Any] = {
        "event_id": event_id,
        "type": "patient.weight_recorded",
        "ts": "2026-03-02T08:00:00Z",
        "patient_id": "p1",
        "weight_kg": 70,
    }
    data.update(overrides)
    return data


@dataclass
class Service:
    """What the API reads from the rest of the service, as plain state a test can change."""

    is_ready: bool = False
    patients: dict[str, PatientView] = field(default_factory=dict)
    report: HealthReport = field(default_factory=lambda: HealthReport(journal_ok=True))
    view_error: Exception | None = None

    def view(self, patient_id: str) -> PatientView | None:
        if self.view_error is not None:
            raise self.view_error
        return self.patients.get(patient_id)


@dataclass
class Api:
    url: str
    session: aiohttp.ClientSession
    journal: FakeJournal
    metrics: Metrics
    service: Service
    clock: ManualClock


@asynccontextmanager
async def serving(
    *,
    journal: Any = None,
    metrics: Metrics | None = None,
    ssl: SSLContext | None = None,
    client_ssl: SSLContext | None = None,
    **options: Any,
) -> AsyncIterator[Api]:
    """A real API server on 127.0.0.1, an OS-picked port, and a client session to it."""
    journal = journal if journal is not None else FakeJournal()
    metrics = metrics if metrics is not None else Metrics()
    service = Service()
    clock = ManualClock(T0.timestamp(), mode="live")
    deps = HttpDeps(
        journal=journal,
        patient_view=service.view,
        ready=lambda: service.is_ready,
        health=lambda: service.report,
        metrics=metrics,
        clock=clock,
        **options,
    )
    server = await start_http(make_app(deps), "127.0.0.1", 0, ssl=ssl)
    scheme = "https" if ssl is not None else "http"
    connector = aiohttp.TCPConnector(ssl=client_ssl) if client_ssl is not None else None
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        # Other rooms' tests configure structlog onto a stream pytest has since closed:
        # capture (and afterwards restore) it, so a log line cannot fail a request here.
        with structlog.testing.capture_logs():
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                url = f"{scheme}://127.0.0.1:{server.port}"
                yield Api(url, session, journal, metrics, service, clock)
    finally:
        await server.close()
        metrics.close()
