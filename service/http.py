"""The HTTP API of ``pumpguard serve``: events in, findings and patient state out, health.

aiohttp rather than an ASGI app on uvicorn (the lead's choice): one dependency serves the
API, is the webhook sinks' client and the tests' client; it runs natively on the same
asyncio loop as the MLLP listener, so one process has one loop and no second server's
lifecycle; TLS is a plain ``ssl.SSLContext`` handed to the site.

Routes (see :func:`make_app`)::

    POST /events          one canonical event, a JSON array, or NDJSON; answered once durable
    GET  /findings        ?patient=&severity=(at least)&since=(RFC 3339)&limit=
    GET  /patients/{id}   what a nurse wants to see: cycle, day, dose, bag, interruption...
    GET  /healthz         200, or 503 when the journal fails or a sink's backlog is too deep
    GET  /readyz          200 once recovery is done and the listeners are up
    GET  /metrics         Prometheus text, rendered in a worker thread

No patient identifier reaches an info-level log unless ``log_patient_ids`` is set: the
request log names the route template (``/patients/{id}``), never the path or the query,
and aiohttp's own access log (which prints both) is off.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from aiohttp import web
from pumpguard.engine.findings import Severity
from pumpguard.service.http_events import post_events
from pumpguard.service.http_models import (
    DEPS,
    ApiRefusal,
    BagView,
    DeadlineView,
    HealthReport,
    HttpDeps,
    InboundRecord,
    InterruptionView,
    JournalPort,
    PatientView,
    SinkHealth,
    health_problems,
)
from pumpguard.service.metrics import CONTENT_TYPE, render

__all__ = [
    "ApiRefusal",
    "BagView",
    "DeadlineView",
    "HealthReport",
    "HttpDeps",
    "HttpServer",
    "InboundRecord",
    "InterruptionView",
    "JournalPort",
    "PatientView",
    "SinkHealth",
    "health_problems",
    "make_app",
    "server_ssl_context",
    "start_http",
]

log = structlog.get_logger("pumpguard.http")
_OPEN_ROUTES = frozenset({"/healthz", "/readyz"})
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def make_app(deps: HttpDeps) -> web.Application:
    """The API as an aiohttp application; :func:`start_http` serves it."""
    app = web.Application(
        client_max_size=deps.max_body_bytes, middlewares=[_request_log, _errors_as_json, _auth]
    )
    app[DEPS] = deps
    app.router.add_post("/events", post_events)
    app.router.add_get("/findings", _get_findings)
    app.router.add_get("/patients/{id}", _get_patient)
    app.router.add_get("/healthz", _get_healthz)
    app.router.add_get("/readyz", _get_readyz)
    app.router.add_get("/metrics", _get_metrics)
    return app


@dataclass
class HttpServer:
    """A started API: its bound port (port 0 asks the OS for one) and how to stop it."""

    runner: web.AppRunner
    site: web.TCPSite
    port: int

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_http(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl: ssl_module.SSLContext | None = None,
) -> HttpServer:
    """Serve ``app`` on ``host:port`` (loopback unless configured); TLS when ``ssl`` is given."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return HttpServer(runner=runner, site=site, port=int(bound))


def server_ssl_context(cert: str | Path, key: str | Path) -> ssl_module.SSLContext:
    """A server TLS context from PEM certificate-chain and key paths (TLS 1.2 at least)."""
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl_module.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


# middlewares
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request, naming the route template, not the path (it may hold a patient id)."""
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    fields: dict[str, object] = {
        "method": request.method,
        "route": resource.canonical if resource is not None else "<unmatched>",
        "status": response.status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if request.app[DEPS].log_patient_ids:
        fields["path"] = request.path_qs
    if request.path in _QUIET_ROUTES:
        log.debug("http request", **fields)  # scraped every few seconds: noise at info
    else:
        log.info("http request", **fields)
    return response


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON; an unexpected one is logged and answered 500, the server goes on."""
    try:
        return await handler(request)
    except ApiRefusal as exc:
        return web.json_response({"error": exc.message}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason
        if exc.status == 413:
            limit = request.app[DEPS].max_body_bytes
            message = f"the body is over the limit of {limit} bytes: send fewer events at a time"
        headers = {k: v for k, v in exc.headers.items() if k == "Allow"}
        return web.json_response({"error": message}, status=exc.status, headers=headers)
    except Exception:
        log.exception("http handler failed", method=request.method)
        return web.json_response({"error": "internal error"}, status=500)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token configured, every route but the probes needs ``Authorization: Bearer``."""
    token = request.app[DEPS].token
    if token is not None and request.path not in _OPEN_ROUTES:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            raise ApiRefusal(
                401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
    return await handler(request)


# reads
async def _get_findings(request: web.Request) -> web.Response:
    """Findings from the journal (read in a thread: it is a database query)."""
    deps = request.app[DEPS]
    query = request.query
    severity = _severity(query.get("severity"))
    since = _since(query.get("since"))
    limit = _limit(query.get("limit"))
    stored = await asyncio.to_thread(
        deps.journal.findings,
        patient_id=query.get("patient") or None,
        min_severity=severity,
        since=since,
        limit=limit,
    )
    rows = [
        {
            **json.loads(s.finding.to_json()),
            "withdrawn": s.withdrawn,
            "withdrawn_by": s.withdrawn_by,
        }
        for s in stored
    ]
    return web.json_response({"count": len(rows), "findings": rows})


def _severity(text: str | None) -> Severity | None:
    if not text:
        return None
    try:
        return Severity(text.lower())
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise ApiRefusal(400, f"severity {text!r} is not one of {allowed}") from None


def _since(text: str | None) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ApiRefusal(
            400, f"since {text!r} is not an RFC 3339 time with an offset (2026-03-02T08:00:00Z)"
        )
    return when.timestamp()


def _limit(text: str | None) -> int:
    if not text:
        return 1000
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise ApiRefusal(400, f"limit {text!r} must be a whole number from 1 to 10000")
    return int(text)


async def _get_patient(request: web.Request) -> web.Response:
    # Read under the engine thread's lock: wait for it on a thread, never on the loop.
    view = await asyncio.to_thread(request.app[DEPS].patient_view, request.match_info["id"])
    if view is None:
        raise ApiRefusal(404, "no such patient")
    return web.json_response(view.model_dump(mode="json"))


async def _get_healthz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    report = deps.health()
    problems = health_problems(report, deps.backlog_limit)
    body = {"status": "failing" if problems else "ok", "problems": problems}
    body.update(report.model_dump(mode="json"))
    return web.json_response(body, status=503 if problems else 200)


async def _get_readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    ready = deps.ready()
    deps.metrics.set_ready(ready)
    return web.json_response({"ready": ready}, status=200 if ready else 503)


async def _get_metrics(request: web.Request) -> web.Response:
    """Prometheus text; the sinks' backlog is read from the journal in the render thread."""
    deps = request.app[DEPS]

    def refresh() -> None:
        try:
            backlog = deps.journal.backlog(now=deps.clock.now())
        except Exception:
            log.exception("backlog read failed; metrics rendered without it")
            return
        for sink, b in backlog.items():
            deps.metrics.set_backlog(sink, b.pending, b.oldest_age_s)

    body = await render(deps.metrics, before=refresh)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
