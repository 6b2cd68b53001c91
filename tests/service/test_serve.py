"""`pumpguard serve` end to end: listeners, journal, engine thread, delivery, restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pumpguard.adapters.hl7v2 import split_messages
from pumpguard.adapters.hl7v2.ack import read_ack
from pumpguard.adapters.mllp import MllpClient
from pumpguard.engine.clock import ManualClock
from pumpguard.engine.findings import rfc3339
from pumpguard.engine.pack import CompiledPack
from pumpguard.pipeline import bundled_demo_course
from pumpguard.service.app import Service
from pumpguard.service.config import ServeConfig
from pumpguard.service.journal import Journal

DATA = bundled_demo_course().parent
LIVE_ONLY = {"INTERRUPTION_WARNING"}
BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _config(tmp: Path, **kw: Any) -> ServeConfig:
    base: dict[str, Any] = {
        "journal": tmp / "journal.sqlite",
        "mllp": {"port": 0},
        "http": {"port": 0},
        "sinks": [{"name": "test", "type": "jsonl", "path": tmp / "sink.jsonl"}],
    }
    base.update(kw)
    return ServeConfig.model_validate(base)


def _hl7_messages() -> list[bytes]:
    data = (DATA / "demo_course.hl7").read_bytes()
    return [b"\r".join(m.segments) + b"\r" for m in split_messages(data) if hasattr(m, "segments")]


def _active(sink: Path) -> dict[str, dict[str, Any]]:
    """The sink's findings by id, deduplicated, less the withdrawn."""
    found: dict[str, dict[str, Any]] = {}
    withdrawn: set[str] = set()
    if not sink.exists():
        return found
    for line in sink.read_text().splitlines():
        rec = json.loads(line)
        if "withdraws" in rec:
            withdrawn.add(rec["withdraws"])
        else:
            found.setdefault(rec["finding_id"], rec)
    return {k: v for k, v in found.items() if k not in withdrawn and v["code"] not in LIVE_ONLY}


async def _until(check: Any, timeout_s: float = 60.0) -> None:
    """Poll a condition the service reaches on its own threads (bounded; the test's only wait)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not check():
        if loop.time() > end:
            raise AssertionError("the service did not get there in time")
        await asyncio.sleep(0.05)


def _demo_ids(pack: CompiledPack) -> set[str]:
    from pumpguard import open_source
    from pumpguard.testing import replay

    findings = replay(pack, open_source(DATA / "demo_course.jsonl"))
    return {f.finding_id for f in findings}


async def _feed_demo(service: Service) -> None:
    assert service.status.mllp_port
    assert service.status.http_port
    async with MllpClient("127.0.0.1", service.status.mllp_port) as client:
        for message in _hl7_messages():
            assert read_ack(await client.send(message)).code == "AA"
    body = (DATA / "demo_documentation.jsonl").read_bytes()
    url = f"http://127.0.0.1:{service.status.http_port}/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": "application/x-ndjson"}) as r,
    ):
        results = (await r.json())["results"]
    assert {x["status"] for x in results} == {"accepted"}


@pytest.mark.asyncio
@pytest.mark.parametrize("engine", ["process", "thread"])
async def test_the_demo_course_fed_live_converges_to_the_demo_findings(
    tmp_path: Path, pack: CompiledPack, engine: str
) -> None:
    service = Service(_config(tmp_path, clock="events", engine=engine), pack=pack)
    await service.start()
    try:
        await _feed_demo(service)
        want = _demo_ids(pack)
        await _until(lambda: set(_active(tmp_path / "sink.jsonl")) == want)
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_the_engine_process_answers_a_patients_state_over_http(
    tmp_path: Path, pack: CompiledPack
) -> None:
    service = Service(_config(tmp_path, clock="events", engine="process"), pack=pack)
    assert not service.in_process
    await service.start()
    try:
        await _feed_demo(service)
        want = _demo_ids(pack)
        await _until(lambda: set(_active(tmp_path / "sink.jsonl")) == want)
        url = f"http://127.0.0.1:{service.status.http_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/patients/P-1001") as r:
                assert r.status == 200
                view = await r.json()
            async with session.get(f"{url}/patients/NOBODY") as r:
                assert r.status == 404
        assert view["patient_id"] == "P-1001"
        assert view["cycle"] == 1
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_an_engine_process_that_dies_fails_the_health_check(
    tmp_path: Path, pack: CompiledPack
) -> None:
    service = Service(_config(tmp_path, clock="events", engine="process"), pack=pack)
    await service.start()
    try:
        url = f"http://127.0.0.1:{service.status.http_port}/healthz"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as r:
                assert r.status == 200
            process = service.engine._proc  # the test's one reach inside: kill the child
            assert process is not None
            process.kill()
            await _until(lambda: service.engine.failed is not None)
            async with session.get(url) as r:
                assert r.status == 503
                body = await r.json()
        assert "engine process exited" in body["journal_error"]
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_a_restart_recovers_from_the_snapshot_and_delivers_nothing_twice(
    tmp_path: Path, pack: CompiledPack
) -> None:
    first = Service(_config(tmp_path, clock="events", engine="process"), pack=pack)
    await first.start()
    await _feed_demo(first)
    want = _demo_ids(pack)
    await _until(lambda: set(_active(tmp_path / "sink.jsonl")) == want)
    await first.stop()
    lines = (tmp_path / "sink.jsonl").read_text().splitlines()
    second = Service(_config(tmp_path, clock="events", engine="process"), pack=pack)
    await second.start()
    try:
        assert second.status.recovered_from is not None
        assert second.status.recovered_inputs == 0
    finally:
        await second.stop()
    assert (tmp_path / "sink.jsonl").read_text().splitlines() == lines


def _event(n: int, type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": f"live-{n}",
        "type": type_,
        "ts": at.isoformat(),
        "patient_id": "L1",
    }
    if type_.startswith("pump."):
        data["pump_id"] = "PUMP-L1"
    data.update(fields)
    return data


def _interrupted_course(t0: datetime, gap: timedelta) -> list[dict[str, Any]]:
    restart = t0 + timedelta(days=10, hours=1) + gap
    return [
        _event(1, "patient.registered", t0, weight_kg=70, indication="relapsed_refractory"),
        _event(2, "encounter.admitted", t0, setting="inpatient"),
        _event(3, "cycle.ordered", t0, cycle=1, phase="induction", dose_mcg_day=9),
        _event(4, "medication.administered", t0, drug="dexamethasone", dose_mg=20),
        _event(5, "pump.infusion_started", t0, drug="blinatumomab", rate_ml_h=10, dose_mcg_day=9),
        _event(6, "encounter.discharged", t0 + timedelta(days=10)),
        _event(7, "pump.infusion_stopped", t0 + timedelta(days=10, hours=1), reason="occlusion"),
        _event(8, "medication.administered", restart, drug="dexamethasone", dose_mg=20),
        _event(9, "pump.infusion_resumed", restart),
    ]


async def _post(port: int, events: list[dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(e) for e in events).encode()
    url = f"http://127.0.0.1:{port}/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={"Content-Type": "application/x-ndjson"}) as r,
    ):
        assert r.status == 200


def _codes(journal_path: Path) -> list[tuple[str, str]]:
    with Journal(journal_path) as j:
        return [(f.finding.code, rfc3339(f.finding.ts)) for f in j.findings()]


@pytest.mark.asyncio
async def test_an_unsupervised_restart_is_raised_at_its_due_time_with_no_further_event(
    tmp_path: Path, pack: CompiledPack
) -> None:
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    resumed = t0 + timedelta(days=10, hours=6)
    clock = ManualClock(resumed.timestamp() + 5, mode="live")
    service = Service(_config(tmp_path, mllp=None), pack=pack, clock=clock)
    await service.start()
    try:
        assert service.status.http_port
        await _post(service.status.http_port, _interrupted_course(t0, timedelta(hours=5)))
        due = resumed + timedelta(hours=1)
        await _until(lambda: service.worker.core.position >= 9)
        assert "REINITIATION_UNSUPERVISED" not in {
            c for c, _ in _codes(tmp_path / "journal.sqlite")
        }
        clock.set(due.timestamp() + 0.5)
        service.worker.wake()
        await _until(
            lambda: (
                ("REINITIATION_UNSUPERVISED", due.strftime("%Y-%m-%dT%H:%M:%SZ"))
                in _codes(tmp_path / "journal.sqlite")
            )
        )
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_on_the_real_clock_a_shortened_window_fires_within_a_second_of_its_due_time(
    tmp_path: Path,
) -> None:
    """The one slow test with the wall clock: windows cut to seconds by a site file."""
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: fast ward\nparameters:\n"
        "  reinit_threshold_h: 0.0005\n  supervision_window_h: 0.0005\n"
        "  interruption_warning_h: 0.0003\n"
    )
    service = Service(_config(tmp_path, mllp=None, site=site))
    await service.start()
    try:
        assert service.status.http_port
        now = datetime.now(UTC).replace(microsecond=0)
        t0 = now - timedelta(days=10, hours=1, seconds=4)
        await _post(service.status.http_port, _interrupted_course(t0, timedelta(seconds=3)))
        resumed = t0 + timedelta(days=10, hours=1, seconds=3)
        due = resumed + timedelta(seconds=1.8)
        await _until(
            lambda: (
                "REINITIATION_UNSUPERVISED" in {c for c, _ in _codes(tmp_path / "journal.sqlite")}
            ),
            timeout_s=20,
        )
        with Journal(tmp_path / "journal.sqlite") as j:
            row = next(f for f in j.findings() if f.finding.code == "REINITIATION_UNSUPERVISED")
        raised_at = row.recorded_at
        assert raised_at - due.timestamp() < 1.0
    finally:
        await service.stop()


@pytest.mark.parametrize("engine", ["thread", "process"])
def test_kill_9_at_random_moments_loses_no_acknowledged_message_and_no_finding(
    engine: str,
) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import serve_crash
    finally:
        sys.path.remove(str(BENCHMARKS))
    result = serve_crash.run(300, 2, 2, seed=11, engine=engine)
    assert result["journal_exactly_once"], result
    assert result["findings_equal_replay"], result
    assert result["sigterm_exit"] == 0
    assert result["acknowledged"] == result["messages"]


def test_the_engine_process_ends_when_the_service_is_killed(tmp_path: Path) -> None:
    """kill -9 of the service leaves no engine process behind (its pipe closes; it exits)."""
    import psutil

    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        f"journal: {tmp_path / 'journal.sqlite'}\nclock: events\nengine: process\n"
        "mllp: {host: 127.0.0.1, port: 0}\nhttp: null\n"
        f"sinks:\n  - {{name: test, type: jsonl, path: {tmp_path / 'sink.jsonl'}}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpguard", "serve", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        service = psutil.Process(proc.pid)
        children: list[psutil.Process] = []
        deadline = time.monotonic() + 120
        while not children:
            assert time.monotonic() < deadline, "no engine process started"
            children = [c for c in service.children() if "spawn_main" in " ".join(c.cmdline())]
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
