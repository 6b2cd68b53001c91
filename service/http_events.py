"""``POST /events``: split a body into items, journal each, answer once all are durable.

A body is one canonical event, a JSON array of them, or NDJSON. Every item ends journaled:
as its event, or as a reject with the reason (read exactly as a JSONL replay reads a line,
so the errors are the same words). A resent ``event_id`` with the same canonical content is
a duplicate; with other content it is rejected (the journal keeps that copy aside too).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from pumpguard.adapters.base import unknown_fields_warning
from pumpguard.adapters.common import canonical_json, describe_invalid
from pumpguard.engine.events import Event, event_adapter
from pumpguard.service.http_models import DEPS, ApiRefusal, AppendedLike, HttpDeps
from pydantic import ValidationError

__all__ = ["content_sha256", "parse_item", "post_events", "split_body"]

log = structlog.get_logger("pumpguard.http")


class _BodyError(Exception):
    """The body as a whole cannot be split into items (it is journaled as one reject)."""


@dataclass(frozen=True)
class _Item:
    """One item of a POST, parsed: an event (maybe with a warning), or a reject reason."""

    raw: bytes
    event: Event | None
    reason: str | None
    event_id: str | None


async def post_events(request: web.Request) -> web.Response:
    """Journal every item, then answer with one result each (never before they are durable)."""
    deps = request.app[DEPS]
    started = time.perf_counter()
    body = await request.read()
    peer = _peer(request)
    try:
        raws = split_body(body, request.content_type)
    except _BodyError as exc:
        item = _Item(raw=body, event=None, reason=str(exc), event_id=None)
        results, failed = await _journal_items(deps, peer, [item])
        return _answer(deps, results, failed, started, status=400, error=str(exc))
    if not raws:
        raise ApiRefusal(400, "no events in the body")
    if len(raws) > deps.max_items:
        raise ApiRefusal(413, f"{len(raws)} items; at most {deps.max_items} per request")
    items = [parse_item(raw) for raw in raws]
    results, failed = await _journal_items(deps, peer, items)
    return _answer(deps, results, failed, started)


def _answer(
    deps: HttpDeps,
    results: list[dict[str, Any]],
    failed: bool,
    started: float,
    *,
    status: int = 200,
    error: str | None = None,
) -> web.Response:
    for r in results:
        deps.metrics.message("http", r["status"])
    deps.metrics.ack_latency(time.perf_counter() - started, channel="http")
    statuses = ("accepted", "duplicate", "rejected", "failed")
    counts = {s: sum(r["status"] == s for r in results) for s in statuses}
    log.info("events posted", items=len(results), **counts)
    body: dict[str, Any] = {"results": results}
    if error is not None:
        body["error"] = error
    if failed:
        body["error"] = "the journal could not store every item; resend them (duplicates are safe)"
        status = 503
    return web.json_response(body, status=status)


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """The items of a body: a JSON object, a JSON array's elements, or NDJSON lines.

    By Content-Type (``application/json``, ``application/x-ndjson``), else sniffed: a body
    that is one JSON document is that document, anything else is read as NDJSON. Each
    item's bytes are exactly as sent, so the journal keeps what was received.
    """
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _BodyError(f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    ctype = content_type.lower()
    if ctype in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return _lines(text)
    stripped = text.strip()
    if stripped.startswith("["):
        return [item.encode() for item in _array_items(stripped)]
    if ctype == "application/json":
        return [stripped.encode()] if stripped else []
    try:
        json.loads(stripped)
    except ValueError:
        return _lines(text)
    return [stripped.encode()]


def _lines(text: str) -> list[bytes]:
    """NDJSON items: non-blank lines (a blank line holds nothing to lose)."""
    return [line.strip().encode() for line in text.split("\n") if line.strip()]


def _array_items(text: str) -> list[str]:
    """The exact text of each element of a JSON array (so each is journaled as sent)."""
    decoder = json.JSONDecoder()
    items: list[str] = []
    i = _skip_ws(text, 1)
    if text[i : i + 1] == "]":
        i = _skip_ws(text, i + 1)
    else:
        while True:
            try:
                _, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                raise _BodyError(f"not a JSON array: {exc.msg} at character {exc.pos}") from exc
            items.append(text[i:end])
            i = _skip_ws(text, end)
            sep = text[i : i + 1]
            if sep == "]":
                i = _skip_ws(text, i + 1)
                break
            if sep != ",":
                raise _BodyError(f"not a JSON array: expected ',' or ']' at character {i}")
            i = _skip_ws(text, i + 1)
    if i != len(text):
        raise _BodyError(f"not a JSON array: extra data at character {i}")
    return items


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def parse_item(raw: bytes) -> _Item:
    """One item as a canonical event, read exactly as a line of a JSONL replay is."""
    try:
        event: Event = event_adapter.validate_json(raw)
    except ValidationError as exc:
        return _Item(raw=raw, event=None, reason=describe_invalid(exc), event_id=_loose_id(raw))
    warning = unknown_fields_warning(event, "http", "")
    reason = warning.reason if warning is not None else None
    return _Item(raw=raw, event=event, reason=reason, event_id=event.event_id)


def _loose_id(raw: bytes) -> str | None:
    """The ``event_id`` of an invalid item when it has a readable one (for the client's sake)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


async def _journal_items(
    deps: HttpDeps, peer: str, items: list[_Item]
) -> tuple[list[dict[str, Any]], bool]:
    """Append every item at once, in item order, so one group commit takes them all.

    ``gather`` starts the appends in order and each enqueues before it first waits, so the
    journal sees the items in the order they were sent.
    """
    received_at = deps.clock.now()
    inbounds = [_inbound(deps, peer, received_at, item) for item in items]
    outcomes = await asyncio.gather(
        *(deps.journal.append(x) for x in inbounds), return_exceptions=True
    )
    results = [
        _result(i, item, out) for i, (item, out) in enumerate(zip(items, outcomes, strict=True))
    ]
    return results, any(r["status"] == "failed" for r in results)


def _result(index: int, item: _Item, outcome: AppendedLike | BaseException) -> dict[str, Any]:
    """One item's answer; a resend with other content is a reject (the journal keeps it aside)."""
    result: dict[str, Any] = {"index": index, "event_id": item.event_id}
    if isinstance(outcome, BaseException):
        if not isinstance(outcome, Exception):
            raise outcome
        result.update(status="failed", reason=f"not stored: {outcome}")
    elif item.event is None:
        result.update(status="rejected", reason=item.reason)
    elif outcome.conflict:
        reason = f"conflicting content for event_id {item.event.event_id}"
        result.update(status="rejected", reason=reason)
    elif outcome.duplicate:
        result.update(status="duplicate")
    else:
        result.update(status="accepted")
        if item.reason is not None:
            result["warning"] = item.reason
    return result


def _inbound(deps: HttpDeps, peer: str, received_at: float, item: _Item) -> object:
    if item.event is None:
        return deps.inbound(
            channel="http",
            peer=peer,
            raw=item.raw,
            received_at=received_at,
            dedupe_key=None,
            events=(),
            outcome="rejected",
            reason=item.reason,
        )
    return deps.inbound(
        channel="http",
        peer=peer,
        raw=item.raw,
        received_at=received_at,
        dedupe_key=f"event:{item.event.event_id}",
        events=(item.event,),
        outcome="accepted" if item.reason is None else "warned",
        reason=item.reason,
        content_sha256=content_sha256(item.event),
    )


def content_sha256(event: Event) -> str:
    """What "the same event" means for a resend: the canonical JSON the engine reads.

    Not the raw bytes: a client that resends with other spacing or key order sends the same
    event, and must hear "duplicate", not "conflict".
    """
    return hashlib.sha256(canonical_json(event).encode()).hexdigest()


def _peer(request: web.Request) -> str:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return request.remote or "unknown"
