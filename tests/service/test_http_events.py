"""POST /events: every item journaled, one result each, and no answer before it is durable."""

from __future__ import annotations

import asyncio
import json

import pytest
from http_fakes import FakeJournal, event_json, serving
from pumpguard.adapters.jsonl import JsonlSource

NDJSON = {"Content-Type": "application/x-ndjson"}


def lines(*items: object) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


@pytest.mark.asyncio
async def test_single_event_is_journaled_and_accepted() -> None:
    async with serving() as api:
        async with api.session.post(f"{api.url}/events", json=event_json("e1")) as resp:
            body = await resp.json()
        assert resp.status == 200
        assert body == {"results": [{"index": 0, "event_id": "e1", "status": "accepted"}]}
        (stored,) = api.journal.messages
        assert stored.channel == "http"
        assert stored.dedupe_key == "event:e1"
        assert stored.outcome == "accepted"
        assert stored.events[0].event_id == "e1"
        assert stored.received_at == api.clock.now()
        assert stored.peer.startswith("127.0.0.1:")


@pytest.mark.asyncio
async def test_array_items_are_journaled_in_order_with_their_exact_bytes() -> None:
    body = b'[ {"event_id":"a","type":"patient.weight_recorded","ts":"2026-03-02T08:00:00Z",'
    body += b'"patient_id":"p1","weight_kg":70} ,\n'
    body += json.dumps(event_json("b")).encode() + b"]"
    async with serving() as api:
        async with api.session.post(
            f"{api.url}/events", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            results = (await resp.json())["results"]
        assert [r["status"] for r in results] == ["accepted", "accepted"]
        assert [m.events[0].event_id for m in api.journal.messages] == ["a", "b"]
        assert api.journal.messages[0].raw == body[2 : body.index(b"} ,") + 1]


@pytest.mark.asyncio
async def test_ndjson_body_gives_one_result_per_line_skipping_blank_ones() -> None:
    body = lines(event_json("a")) + b"\n  \n" + lines(event_json("b"), event_json("c"))
    async with serving() as api:
        async with api.session.post(f"{api.url}/events", data=body, headers=NDJSON) as resp:
            results = (await resp.json())["results"]
        assert [(r["index"], r["event_id"]) for r in results] == [(0, "a"), (1, "b"), (2, "c")]
        assert len(api.journal.messages) == 3


@pytest.mark.asyncio
async def test_ndjson_is_sniffed_without_a_content_type() -> None:
    body = lines(event_json("a"), event_json("b"))
    async with serving() as api:
        async with api.session.post(
            f"{api.url}/events", data=body, headers={"Content-Type": "text/plain"}
        ) as resp:
            results = (await resp.json())["results"]
        assert [r["status"] for r in results] == ["accepted", "accepted"]


@pytest.mark.asyncio
async def test_invalid_item_is_rejected_with_the_replay_reason_and_journaled() -> None:
    bad = event_json("e2", weight_kg="70")
    body = lines(event_json("e1"), bad)
    expected = [r.reason for r in JsonlSource(data=json.dumps(bad).encode())]
    async with serving() as api:
        async with api.session.post(f"{api.url}/events", data=body, headers=NDJSON) as resp:
            results = (await resp.json())["results"]
        assert resp.status == 200
        assert results[1] == {
            "index": 1,
            "event_id": "e2",
            "status": "rejected",
            "reason": expected[0],
        }
        reject = api.journal.messages[1]
        assert (reject.outcome, reject.dedupe_key, reject.events) == ("rejected", None, ())
        assert reject.reason == expected[0]
        assert reject.raw == json.dumps(bad).encode()


@pytest.mark.asyncio
async def test_unknown_field_is_accepted_with_a_warning_and_journaled_as_warned() -> None:
    async with serving() as api:
        async with api.session.post(f"{api.url}/events", json=event_json(colour="red")) as resp:
            (result,) = (await resp.json())["results"]
        assert result["status"] == "accepted"
        assert result["warning"] == "unknown field(s) ignored: colour"
        assert api.journal.messages[0].outcome == "warned"


@pytest.mark.asyncio
async def test_resent_event_is_a_duplicate_and_not_stored_twice() -> None:
    resend = b'{"weight_kg": 70, "patient_id": "p1", "ts": "2026-03-02T08:00:00Z",\n'
    resend += b' "type": "patient.weight_recorded", "event_id": "e1"}'
    async with serving() as api:
        await api.session.post(f"{api.url}/events", json=event_json("e1"))
        async with api.session.post(
            f"{api.url}/events", data=resend, headers={"Content-Type": "application/json"}
        ) as resp:
            (result,) = (await resp.json())["results"]
        assert result["status"] == "duplicate"
        assert len(api.journal.messages) == 1


@pytest.mark.asyncio
async def test_resent_event_id_with_other_content_is_rejected_as_conflicting() -> None:
    async with serving() as api:
        await api.session.post(f"{api.url}/events", json=event_json("e1"))
        async with api.session.post(
            f"{api.url}/events", json=event_json("e1", weight_kg=71)
        ) as resp:
            (result,) = (await resp.json())["results"]
        assert result["status"] == "rejected"
        assert result["reason"] == "conflicting content for event_id e1"
        assert b'"weight_kg": 71' in api.journal.resends[0].raw


@pytest.mark.asyncio
async def test_answer_waits_until_the_journal_append_resolves() -> None:
    gate = asyncio.Event()
    async with serving(journal=FakeJournal(gate=gate)) as api:
        post = asyncio.ensure_future(api.session.post(f"{api.url}/events", json=event_json()))
        await asyncio.wait_for(api.journal.called.wait(), 5)
        async with api.session.get(f"{api.url}/readyz"):
            pass  # the server answered something else meanwhile
        assert not post.done()
        gate.set()
        resp = await asyncio.wait_for(post, 5)
        assert (await resp.json())["results"][0]["status"] == "accepted"
        resp.release()


@pytest.mark.asyncio
async def test_failed_append_answers_503_so_the_client_resends() -> None:
    from pumpguard.engine.errors import PumpguardError

    journal = FakeJournal(fail_with=PumpguardError("disk I/O error"))
    async with serving(journal=journal) as api:
        async with api.session.post(f"{api.url}/events", json=event_json()) as resp:
            body = await resp.json()
        assert resp.status == 503
        assert body["results"][0] == {
            "index": 0,
            "event_id": "e1",
            "status": "failed",
            "reason": "not stored: disk I/O error",
        }


@pytest.mark.asyncio
async def test_malformed_array_body_is_journaled_whole_as_a_reject_and_answered_400() -> None:
    body = b'[{"event_id": "a"}, oops]'
    async with serving() as api:
        async with api.session.post(
            f"{api.url}/events", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            answer = await resp.json()
        assert resp.status == 400
        assert answer["results"][0]["status"] == "rejected"
        assert answer["error"].startswith("not a JSON array")
        (stored,) = api.journal.messages
        assert (stored.raw, stored.outcome) == (body, "rejected")


@pytest.mark.asyncio
async def test_body_over_the_size_limit_is_refused_with_413() -> None:
    async with serving(max_body_bytes=1000) as api:
        body = lines(*(event_json(f"e{i}") for i in range(20)))
        async with api.session.post(f"{api.url}/events", data=body, headers=NDJSON) as resp:
            assert resp.status == 413
            assert "over the limit of 1000 bytes" in (await resp.json())["error"]
        assert api.journal.messages == []


@pytest.mark.asyncio
async def test_more_items_than_allowed_are_refused_with_413() -> None:
    async with serving(max_items=2) as api:
        body = lines(*(event_json(f"e{i}") for i in range(3)))
        async with api.session.post(f"{api.url}/events", data=body, headers=NDJSON) as resp:
            assert resp.status == 413
            assert "at most 2" in (await resp.json())["error"]
        assert api.journal.messages == []


@pytest.mark.asyncio
async def test_posted_outcomes_are_counted_in_metrics() -> None:
    async with serving() as api:
        body = lines(event_json("a"), {"event_id": "b"})
        await api.session.post(f"{api.url}/events", data=body, headers=NDJSON)
        text = api.metrics.registry.get_sample_value(
            "pumpguard_messages_total", {"channel": "http", "outcome": "rejected"}
        )
        assert text == 1.0


@pytest.mark.asyncio
async def test_pretty_printed_object_is_one_event_when_sniffed() -> None:
    body = json.dumps(event_json("e1"), indent=2).encode()
    async with serving() as api:
        async with api.session.post(
            f"{api.url}/events", data=body, headers={"Content-Type": "text/plain"}
        ) as resp:
            results = (await resp.json())["results"]
        assert [(r["event_id"], r["status"]) for r in results] == [("e1", "accepted")]
