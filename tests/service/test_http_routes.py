"""The read side of the API: findings, patients, probes, metrics, and who may call them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import structlog
from http_fakes import T0, FakeBacklog, FakeJournal, FakeStoredFinding, make_finding, serving
from pumpguard.engine.findings import Severity
from pumpguard.service.http import (
    BagView,
    DeadlineView,
    HealthReport,
    InterruptionView,
    PatientView,
    SinkHealth,
)

TOKEN = "s3cret-token"


def journal_with_findings() -> FakeJournal:
    journal = FakeJournal()
    journal.stored_findings = [
        FakeStoredFinding(make_finding("p1", Severity.LOW, 1, "LOW1")),
        FakeStoredFinding(make_finding("p1", Severity.HIGH, 2, "HIGH1"), True, "W-1"),
        FakeStoredFinding(make_finding("p2", Severity.CRITICAL, 3, "CRIT1")),
        FakeStoredFinding(make_finding("p1", Severity.CRITICAL, 4, "CRIT2")),
    ]
    return journal


@pytest.mark.asyncio
async def test_token_is_required_when_configured() -> None:
    async with serving(token=TOKEN) as api, api.session.get(f"{api.url}/findings") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.asyncio
async def test_wrong_token_is_refused() -> None:
    async with serving(token=TOKEN) as api:
        headers = {"Authorization": "Bearer not-it"}
        async with api.session.post(f"{api.url}/events", json={}, headers=headers) as resp:
            assert resp.status == 401
        assert api.journal.messages == []


@pytest.mark.asyncio
async def test_right_token_is_let_through() -> None:
    async with serving(token=TOKEN) as api:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with api.session.get(f"{api.url}/findings", headers=headers) as resp:
            assert resp.status == 200


@pytest.mark.asyncio
async def test_probes_need_no_token() -> None:
    async with serving(token=TOKEN) as api:
        api.service.is_ready = True
        async with api.session.get(f"{api.url}/healthz") as health:
            assert health.status == 200
        async with api.session.get(f"{api.url}/readyz") as ready:
            assert ready.status == 200


@pytest.mark.asyncio
async def test_findings_are_filtered_by_patient_and_at_least_severity() -> None:
    async with serving(journal=journal_with_findings()) as api:
        params = {"patient": "p1", "severity": "high"}
        async with api.session.get(f"{api.url}/findings", params=params) as resp:
            body = await resp.json()
        assert [f["code"] for f in body["findings"]] == ["HIGH1", "CRIT2"]
        assert body["count"] == 2
        assert body["findings"][0]["withdrawn"] is True
        assert body["findings"][0]["withdrawn_by"] == "W-1"
        assert body["findings"][0]["ts"] == "2026-03-02T10:00:00Z"


@pytest.mark.asyncio
async def test_findings_since_takes_an_rfc3339_time_and_limit_caps_the_count() -> None:
    since = (T0 + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    async with serving(journal=journal_with_findings()) as api:
        params = {"since": since, "limit": "2"}
        async with api.session.get(f"{api.url}/findings", params=params) as resp:
            body = await resp.json()
        assert [f["code"] for f in body["findings"]] == ["HIGH1", "CRIT1"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("since", "2026-03-02T08:00:00"),
        ("since", "2026-03-02\r\nX-Evil: 1"),
        ("severity", "dire"),
        ("limit", "0"),
    ],
)
async def test_bad_findings_query_is_answered_400_saying_why(param: str, value: str) -> None:
    async with serving() as api:
        url = f"{api.url}/findings"
        async with api.session.get(url, params={param: value}) as resp:
            assert resp.status == 400
            assert param in (await resp.json())["error"]


@pytest.mark.asyncio
async def test_unknown_patient_is_404() -> None:
    async with serving() as api, api.session.get(f"{api.url}/patients/nobody") as resp:
        assert resp.status == 404
        assert (await resp.json()) == {"error": "no such patient"}


@pytest.mark.asyncio
async def test_known_patient_shows_its_derived_state() -> None:
    view = PatientView(
        patient_id="p1",
        cycle=1,
        day=3,
        running=False,
        dose_mcg_day=9,
        bag=BagView(bag_id="B7", hung_at=T0, due=T0 + timedelta(hours=48)),
        open_interruption=InterruptionView(since=T0 + timedelta(hours=5), hours=1.5),
        open_deadlines=(DeadlineView(name="resume", due=T0 + timedelta(hours=9), rule="r.x"),),
        last_event_ts=T0 + timedelta(hours=5),
    )
    async with serving() as api:
        api.service.patients["p1"] = view
        async with api.session.get(f"{api.url}/patients/p1") as resp:
            body = await resp.json()
        assert resp.status == 200
        assert body["bag"] == {
            "bag_id": "B7",
            "hung_at": "2026-03-02T08:00:00Z",
            "due": "2026-03-04T08:00:00Z",
        }
        assert body["open_interruption"] == {"since": "2026-03-02T13:00:00Z", "hours": 1.5}
        assert body["open_deadlines"][0]["name"] == "resume"
        assert (body["cycle"], body["day"], body["running"]) == (1, 3, False)


@pytest.mark.asyncio
async def test_readyz_is_503_until_the_service_is_ready_then_200() -> None:
    async with serving() as api:
        async with api.session.get(f"{api.url}/readyz") as before:
            assert before.status == 503
        api.service.is_ready = True
        async with api.session.get(f"{api.url}/readyz") as after:
            assert after.status == 200
            assert (await after.json()) == {"ready": True}


@pytest.mark.asyncio
async def test_healthz_is_503_when_a_sink_backlog_is_over_the_limit() -> None:
    async with serving(backlog_limit=10) as api:
        api.service.report = HealthReport(
            journal_ok=True, sinks=(SinkHealth(sink="webhook", pending=11, oldest_age_s=300),)
        )
        async with api.session.get(f"{api.url}/healthz") as resp:
            body = await resp.json()
        assert resp.status == 503
        assert body["problems"] == ["sink webhook: 11 pending, over the limit of 10"]
        assert body["sinks"][0]["pending"] == 11


@pytest.mark.asyncio
async def test_healthz_is_503_when_the_journal_fails() -> None:
    async with serving() as api:
        api.service.report = HealthReport(journal_ok=False, journal_error="disk full")
        async with api.session.get(f"{api.url}/healthz") as resp:
            assert resp.status == 503
            assert (await resp.json())["problems"] == ["journal failing: disk full"]


@pytest.mark.asyncio
async def test_metrics_are_prometheus_text_with_the_sinks_backlog() -> None:
    journal = FakeJournal(sinks={"webhook": FakeBacklog("webhook", 4, 12.5)})
    async with serving(journal=journal) as api:
        async with api.session.get(f"{api.url}/metrics") as resp:
            text = await resp.text()
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert 'pumpguard_outbox_backlog{sink="webhook"} 4.0' in text
        assert 'pumpguard_outbox_oldest_pending_age_seconds{sink="webhook"} 12.5' in text
        assert journal.backlog_calls == [api.clock.now()]


@pytest.mark.asyncio
async def test_unknown_route_is_404_and_wrong_method_is_405() -> None:
    async with serving() as api:
        async with api.session.get(f"{api.url}/nothing-here") as missing:
            assert missing.status == 404
        async with api.session.get(f"{api.url}/events") as wrong:
            assert wrong.status == 405
            assert "POST" in wrong.headers["Allow"]


@pytest.mark.asyncio
async def test_a_failing_handler_is_answered_500_and_the_server_goes_on() -> None:
    async with serving() as api:
        api.service.view_error = RuntimeError("state unreadable")
        async with api.session.get(f"{api.url}/patients/p1") as resp:
            assert resp.status == 500
            assert (await resp.json()) == {"error": "internal error"}
        async with api.session.get(f"{api.url}/readyz") as after:
            assert after.status == 503


@pytest.mark.asyncio
async def test_request_log_names_the_route_not_the_patient() -> None:
    async with serving() as api:
        with structlog.testing.capture_logs() as logs:
            async with api.session.get(f"{api.url}/patients/MRN-12345"):
                pass
    (line,) = [entry for entry in logs if entry["event"] == "http request"]
    assert line["route"] == "/patients/{id}"
    assert "MRN-12345" not in repr(logs)
