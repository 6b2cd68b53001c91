"""The service's Prometheus metrics, on a registry of their own.

Its own ``CollectorRegistry`` (not prometheus-client's global one) so two services in one
process (tests, drills) never share a counter, and nothing a library registers globally
leaks into our ``/metrics``.

Rendering walks every collector under the registry's lock and may call back into the
journal (a SQLite read): done on the event loop it would stall the MLLP listener and every
HTTP request for as long as it takes. So :func:`render` always runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics", "render"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8``: the text format every Prometheus reads."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds. An ACK waits for one group commit (an fsync): milliseconds, rarely a second."""


class Metrics:
    """Every metric the service exports, with one small method per thing that happened.

    The other parts call these methods (``metrics.message("mllp", "accepted")``) instead of
    touching prometheus objects, so names and labels are defined once, here.
    """

    def __init__(self, namespace: str = "pumpguard") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self._messages = Counter(
            "messages",
            "Messages received, by channel and outcome.",
            ["channel", "outcome"],
            namespace=ns,
            registry=r,
        )
        self._ack_latency = Histogram(
            "ack_latency_seconds",
            "Time from receipt to a durable answer (ACK or HTTP response).",
            ["channel"],
            namespace=ns,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self._evaluated = Counter(
            "events_evaluated", "Canonical events the engine evaluated.", namespace=ns, registry=r
        )
        self._findings = Counter(
            "findings",
            "Findings raised, by code and severity.",
            ["code", "severity"],
            namespace=ns,
            registry=r,
        )
        self._withdrawals = Counter(
            "withdrawals",
            "Findings withdrawn by corrected history, by code and severity.",
            ["code", "severity"],
            namespace=ns,
            registry=r,
        )
        self._backlog = Gauge(
            "outbox_backlog",
            "Outbox items not yet delivered, per sink.",
            ["sink"],
            namespace=ns,
            registry=r,
        )
        self._oldest = Gauge(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered item, per sink.",
            ["sink"],
            namespace=ns,
            registry=r,
        )
        self._attempts = Counter(
            "delivery_attempts", "Delivery attempts, per sink.", ["sink"], namespace=ns, registry=r
        )
        self._failures = Counter(
            "delivery_failures",
            "Failed delivery attempts, per sink.",
            ["sink"],
            namespace=ns,
            registry=r,
        )
        self._lag = Gauge(
            "engine_lag_seconds",
            "Service clock now minus the last time the engine evaluated.",
            namespace=ns,
            registry=r,
        )
        self._position = Gauge(
            "journal_position",
            "Last engine-input position in the journal.",
            namespace=ns,
            registry=r,
        )
        self._snapshot_position = Gauge(
            "snapshot_position", "Journal position of the last snapshot.", namespace=ns, registry=r
        )
        self._snapshot_age = Gauge(
            "snapshot_age_seconds", "Age of the last snapshot.", namespace=ns, registry=r
        )
        self._deadlines = Gauge(
            "open_deadlines", "Deadlines the engine is waiting on.", namespace=ns, registry=r
        )
        self._ready = Gauge(
            "ready", "1 once recovery is done and the listeners are up.", namespace=ns, registry=r
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # things that happened
    def message(self, channel: str, outcome: str) -> None:
        """One message received on ``channel`` that ended ``outcome`` (accepted, duplicate...)."""
        self._messages.labels(channel=channel, outcome=outcome).inc()

    def ack_latency(self, seconds: float, channel: str = "mllp") -> None:
        """How long one answer took to become durable and go back."""
        self._ack_latency.labels(channel=channel).observe(seconds)

    def evaluated(self, count: int = 1) -> None:
        self._evaluated.inc(count)

    def finding(self, code: str, severity: str) -> None:
        self._findings.labels(code=code, severity=str(severity)).inc()

    def withdrawal(self, code: str, severity: str) -> None:
        self._withdrawals.labels(code=code, severity=str(severity)).inc()

    def delivery_attempt(self, sink: str, *, ok: bool) -> None:
        """One attempt to deliver to ``sink``; a failed one also counts as a failure."""
        self._attempts.labels(sink=sink).inc()
        if not ok:
            self._failures.labels(sink=sink).inc()

    # levels
    def set_backlog(self, sink: str, pending: int, oldest_age_s: float | None) -> None:
        """A sink's outbox: how many wait, and for how long the oldest has (0 when none)."""
        self._backlog.labels(sink=sink).set(pending)
        self._oldest.labels(sink=sink).set(oldest_age_s or 0.0)

    def set_engine_lag(self, seconds: float) -> None:
        self._lag.set(seconds)

    def set_journal_position(self, position: int) -> None:
        self._position.set(position)

    def set_snapshot(self, position: int, age_s: float) -> None:
        self._snapshot_position.set(position)
        self._snapshot_age.set(age_s)

    def set_open_deadlines(self, count: int) -> None:
        self._deadlines.set(count)

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def register(self, collector: Collector) -> None:
        """Add a custom collector (e.g. one that reads the journal when scraped)."""
        self.registry.register(collector)

    # rendering
    def executor(self) -> ThreadPoolExecutor:
        """One worker thread for rendering: slow scrapes queue behind each other instead of
        taking every thread of the loop's default executor (DNS lookups, file reads)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="metrics-render")
            return self._executor

    def close(self) -> None:
        """Stop the render thread (waits for a render in progress)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


async def render(metrics: Metrics, *, before: Callable[[], None] | None = None) -> bytes:
    """The exposition text, produced in the metrics thread, never on the event loop.

    ``before`` runs in that thread first: the HTTP API uses it to read the sinks' backlog
    from the journal, which is a database read and must not run on the loop either.
    """

    def work() -> bytes:
        if before is not None:
            before()
        return generate_latest(metrics.registry)

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(metrics.executor(), work)
