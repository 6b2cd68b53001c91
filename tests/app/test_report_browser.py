"""The report of a 200-patient drill population, opened in a real headless Chromium.

Chromium is driven over the DevTools protocol (aiohttp's websocket client):
the page must draw every chart, log no console error and make no network
request; a screenshot is saved (``PUMPGUARD_SCREENSHOT`` names a copy to keep).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,2000",
]


@dataclass
class PageRun:
    """What the browser saw while the page loaded and drew."""

    charts: int = 0
    traces: dict[str, int] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshot: bytes = b""


class _Cdp:
    """A minimal DevTools client: numbered commands, events kept as they come."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        self.n += 1
        msg: dict[str, Any] = {"id": self.n, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        while True:
            reply = json.loads((await self.ws.receive()).data)
            if reply.get("id") == self.n:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)


async def _ws_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    for _ in range(200):  # chromium prints a few lines before the one we need
        line = (await proc.stderr.readline()).decode()
        if line.startswith("DevTools listening on "):
            return line.split(" on ", 1)[1].strip()
        if not line:
            break
    raise RuntimeError("chromium did not open its DevTools port")


async def open_in_chromium(page: Path) -> PageRun:
    """Load ``page``, wait for its charts (window.pgReady), and collect what happened."""
    import aiohttp

    profile = tempfile.mkdtemp(prefix="pumpguard-chromium-")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    run = PageRun()
    try:
        url = await asyncio.wait_for(_ws_url(proc), 30)
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            cdp = _Cdp(ws)
            target = await cdp.call("Target.createTarget", url="about:blank")
            att = await cdp.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
            s = att["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                await cdp.call(f"{domain}.enable", s)
            await cdp.call("Page.navigate", s, url=page.resolve().as_uri())
            ready = await cdp.call(
                "Runtime.evaluate",
                s,
                awaitPromise=True,
                returnByValue=True,
                expression="new Promise(r => { const t = () => window.pgReady ? "
                "window.pgReady.then(r) : setTimeout(t, 50); t(); })",
            )
            run.charts = int(ready["result"]["value"])
            probe = await cdp.call(
                "Runtime.evaluate",
                s,
                returnByValue=True,
                expression="Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".map(e => [e.id, e.querySelectorAll('.trace').length])",
            )
            run.traces = {k: int(v) for k, v in probe["result"]["value"]}
            shot = await cdp.call(
                "Page.captureScreenshot", s, format="png", captureBeyondViewport=True
            )
            run.screenshot = base64.b64decode(shot["data"])
            _collect(cdp.events, run)
            await cdp.call("Browser.close")
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return run


def _collect(events: list[dict[str, Any]], run: PageRun) -> None:
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            run.console_errors.append(json.dumps(p.get("args"))[:300])
        elif method == "Runtime.exceptionThrown":
            run.console_errors.append(json.dumps(p.get("exceptionDetails"))[:300])
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            run.console_errors.append(p["entry"].get("text", "")[:300])
        elif method == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if not u.startswith(("file:", "data:", "about:")):
                run.requests.append(u)


@pytest.fixture(scope="module", name="population_report")
def _population_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a 200-patient drill population (one deviation in a tenth of them)."""
    from pumpguard.pipeline import Input, RejectReport, audit
    from pumpguard.report_cmd import write_report
    from pumpguard.simulations.montecarlo import generate_population
    from pumpguard.simulations.protocol import load_protocol

    d = tmp_path_factory.mktemp("browser")
    pack, protocol = load_protocol("seed", None, None)
    gen = generate_population(200, 0.1, 11, protocol=protocol)
    events = d / "population.jsonl"
    events.write_text("".join(line + "\n" for line in gen.lines), encoding="utf-8")
    with (d / "findings.jsonl").open("w", encoding="utf-8") as out:
        result = audit([events], pack, out=out, rejects=RejectReport(None))
    assert result.findings, "a population with injected deviations raises findings"
    return write_report(d / "report.html", result.findings, [Input(events, events.name)], pack)


def _drive(page: Path, shot: Path) -> dict[str, Any]:
    """Run the DevTools session in a child process, so no event loop outlives it in pytest."""
    code = (
        "import asyncio, json, sys; sys.path.insert(0, sys.argv[1]);"
        "from test_report_browser import open_in_chromium;"
        "from pathlib import Path;"
        "r = asyncio.run(asyncio.wait_for(open_in_chromium(Path(sys.argv[2])), 120));"
        "Path(sys.argv[3]).write_bytes(r.screenshot);"
        "print(json.dumps({'charts': r.charts, 'traces': r.traces, "
        "'console_errors': r.console_errors, 'requests': r.requests}))"
    )
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", code, here, str(page), str(shot)],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium cannot be installed here")
def test_report_of_200_patients_draws_every_chart_offline_in_chromium(population_report):
    keep = os.environ.get("PUMPGUARD_SCREENSHOT")
    target = Path(keep) if keep else population_report.with_suffix(".png")
    run = _drive(population_report, target)
    assert run["charts"] == 5  # findings by code, three control charts, the patient timeline
    drawn = {k for k, n in run["traces"].items() if n > 0}
    assert drawn == {"chart-codes", "chart-spc-0", "chart-spc-1", "chart-spc-2", "chart-timeline"}
    assert run["console_errors"] == []
    assert run["requests"] == []
    shot = target.read_bytes()
    assert shot.startswith(b"\x89PNG")
    assert len(shot) > 50_000
