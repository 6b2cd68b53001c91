"""The service's metrics: their own registry, and rendering that never stalls the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from http_fakes import serving
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY
from pumpguard.service.metrics import Metrics, render


class BlockingCollector:
    """A collector that holds the render until the test releases it (a slow scrape)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.thread = threading.current_thread()
        self.entered.set()
        assert self.release.wait(10), "the test never released the render"
        yield GaugeMetricFamily("slow_thing", "A value that took a while to read.", value=7)

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registered without collecting (auto_describe would call collect)


@pytest.mark.asyncio
async def test_loop_keeps_serving_while_a_render_is_blocked() -> None:
    metrics = Metrics()
    slow = BlockingCollector()
    metrics.register(slow)
    async with serving(metrics=metrics) as api:
        scrape = asyncio.ensure_future(api.session.get(f"{api.url}/metrics"))
        assert await asyncio.to_thread(slow.entered.wait, 5)
        async with api.session.get(f"{api.url}/readyz") as probe:
            assert probe.status == 503  # answered while the render is still blocked
        assert not scrape.done()
        slow.release.set()
        resp = await asyncio.wait_for(scrape, 5)
        assert "slow_thing 7.0" in await resp.text()
        resp.release()
    assert slow.thread is not threading.main_thread()


@pytest.mark.asyncio
async def test_render_runs_the_before_hook_in_the_render_thread() -> None:
    metrics = Metrics()
    seen: list[threading.Thread] = []

    def before() -> None:
        seen.append(threading.current_thread())
        metrics.set_backlog("webhook", 3, None)

    try:
        text = (await render(metrics, before=before)).decode()
    finally:
        metrics.close()
    assert seen[0].name.startswith("metrics-render")
    assert 'pumpguard_outbox_backlog{sink="webhook"} 3.0' in text
    assert 'pumpguard_outbox_oldest_pending_age_seconds{sink="webhook"} 0.0' in text


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.message("mllp", "accepted")
    labels = {"channel": "mllp", "outcome": "accepted"}
    assert first.registry.get_sample_value("pumpguard_messages_total", labels) == 1.0
    assert second.registry.get_sample_value("pumpguard_messages_total", labels) is None
    assert REGISTRY.get_sample_value("pumpguard_messages_total", labels) is None


def test_failed_delivery_counts_as_an_attempt_and_a_failure() -> None:
    metrics = Metrics()
    metrics.delivery_attempt("webhook", ok=True)
    metrics.delivery_attempt("webhook", ok=False)
    value = metrics.registry.get_sample_value
    assert value("pumpguard_delivery_attempts_total", {"sink": "webhook"}) == 2.0
    assert value("pumpguard_delivery_failures_total", {"sink": "webhook"}) == 1.0


def test_ack_latency_lands_in_the_histogram_of_its_channel() -> None:
    metrics = Metrics()
    metrics.ack_latency(0.004, channel="mllp")
    value = metrics.registry.get_sample_value
    assert value("pumpguard_ack_latency_seconds_bucket", {"channel": "mllp", "le": "0.005"}) == 1
    assert value("pumpguard_ack_latency_seconds_bucket", {"channel": "mllp", "le": "0.0025"}) == 0


def test_levels_show_the_last_value_set() -> None:
    metrics = Metrics()
    metrics.set_ready(True)
    metrics.set_engine_lag(2.5)
    metrics.set_snapshot(120, 30.0)
    metrics.set_open_deadlines(4)
    metrics.set_journal_position(130)
    metrics.finding("BAG_OVERDUE", "high")
    value = metrics.registry.get_sample_value
    assert value("pumpguard_ready") == 1.0
    assert value("pumpguard_engine_lag_seconds") == 2.5
    assert value("pumpguard_snapshot_position") == 120.0
    assert value("pumpguard_open_deadlines") == 4.0
    assert value("pumpguard_journal_position") == 130.0
    labels = {"code": "BAG_OVERDUE", "severity": "high"}
    assert value("pumpguard_findings_total", labels) == 1.0
