"""The service: one process, one journal, one engine thread, listeners and delivery around them.

Composition only. The order of a start is the order of trust: open the
journal, recover the engine (newest snapshot of this pack and code, then the
journal after it; no snapshot or another pack: the whole journal), start the
engine thread and delivery, and only then listen. A message is acknowledged
once it is durable in the journal, never before; everything after that (the
engine, the sinks) can be replayed from it, which is what makes ``kill -9``
safe.

Stopping (SIGTERM) runs the same way back: stop accepting, answer what is in
flight, let the engine drain its queue, snapshot, give the sinks a bounded
time to deliver, close the journal.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pumpguard.adapters.config import AdapterConfig
from pumpguard.engine.clock import Clock
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.engine.snapshot import CODE_VERSION
from pumpguard.rules import default_pack

from .config import ServeConfig, Tls
from .engine_process import EngineProcess, EngineProcessError, EngineSpec, service_clock
from .live import LiveCore, LiveInput, Outputs
from .worker import EngineWorker, recover

__all__ = ["Service", "ServiceStatus", "run_service", "server_ssl"]

log = structlog.get_logger("pumpguard.service")

DELIVERY_LINGER_S = 0.02
"""After a delivery round, how long a sink lets more findings gather (none wait when idle:
the first finding of a quiet spell goes at once). Under load a sink then has at most 50
rounds a second, each a write and a journal update, rather than one per finding."""


def server_ssl(tls: Tls | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM paths (client certificates required when ``ca`` is set)."""
    if tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    if tls.ca is not None:
        ctx.load_verify_locations(str(tls.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def patient_digest(patient_id: str) -> str:
    """What info-level logs say instead of a patient id (stable, not reversible by eye)."""
    return "pt-" + hashlib.sha256(patient_id.encode()).hexdigest()[:12]


@dataclass(slots=True)
class ServiceStatus:
    """What /healthz and /readyz report."""

    ready: bool = False
    """Accepting: the listeners are up (a message is journaled before its ACK)."""
    engine_ready: bool = False
    """The engine has recovered (snapshot and journal after it) and follows the journal."""
    recovered_inputs: int = 0
    recovered_from: int | None = None
    remapped_messages: int = 0
    recovery_s: float = 0.0
    mllp_port: int | None = None
    http_port: int | None = None
    errors: list[str] = field(default_factory=list)


class Service:
    """``pumpguard serve``: build with a config, ``await start()``, ``await stop()``."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        clock: Clock | None = None,
        pack: CompiledPack | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._injected_clock = clock is not None
        self.clock: Clock = clock or service_clock(config.clock)
        self.pack = pack or load_pack(
            config.pack or default_pack(), edition=config.edition, site_file=config.site
        )
        self.adapter_config = (
            AdapterConfig.from_yaml(config.adapter_config) if config.adapter_config else None
        )
        self.rng = rng or random.Random()
        self.status = ServiceStatus()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = asyncio.Event()
        self._engine_started = False
        self._build()

    @property
    def in_process(self) -> bool:
        """The engine on a thread here (config ``engine: thread``, or an injected clock,
        which cannot cross to another process) rather than in a process of its own."""
        return self.config.engine == "thread" or self._injected_clock

    # -- composition -----------------------------------------------------------
    def _build(self) -> None:
        from .delivery import Deliverer
        from .journal import Journal
        from .metrics import Metrics
        from .sink_config import build_transports

        self.metrics = Metrics()
        self.journal = Journal(self.config.journal, on_commit=self._committed, remember_keys=True)
        self.sink_names = [s.name for s in self.config.sinks]
        hold = dict.fromkeys(self.config.hold.codes, self.config.hold.grace_s)
        self.worker: EngineWorker | None = None
        self.core: LiveCore | None = None
        self.engine: EngineWorker | EngineProcess
        spec = EngineSpec(
            journal=self.config.journal,
            pack=self.pack,
            clock=self.config.clock,
            late_after_s=self.config.late_after_s,
            sinks=tuple(self.sink_names),
            pack_sha256=self.pack.ref.sha256,
            code_version=CODE_VERSION,
            snapshot_every_inputs=self.config.snapshot_every_inputs,
            snapshot_every_s=self.config.snapshot_every_s,
            hold=hold,
        )
        if self.in_process:
            self.core = spec.core(self.journal)
            self.engine = self.worker = spec.worker(
                self.core, self.journal, self.clock, on_outputs=self._outputs
            )
        else:
            self.engine = EngineProcess(spec, self.journal, self.clock, on_outputs=self._outputs)
        from .ingest import MllpIngest

        self.ingest = MllpIngest(self.journal, self.clock, self.metrics, self.adapter_config)
        self.deliverer = Deliverer(
            self.journal,
            build_transports(self.config.sinks),
            self.clock,
            rng=self.rng,
            linger_s=DELIVERY_LINGER_S,
        )

    # -- start -----------------------------------------------------------------
    async def start(self) -> None:
        """Recover the engine, start it, delivery and the listeners; returns once all are up.

        With the engine in its own process, the listeners accept before it has recovered
        (``status.ready``); ``status.engine_ready`` follows."""
        self._loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        if isinstance(self.engine, EngineProcess):
            # The engine recovers in its own process while this one maps what the mapper's
            # snapshot missed and starts listening: messages are journaled (and acknowledged)
            # during its recovery, and it reads them from the journal once it has caught up.
            # Spawning waits until the child has read its spec (the pack): on a thread, so
            # the listeners do not wait for a new interpreter to start.
            starting = self._loop.run_in_executor(None, self.engine.start)
            latest = self.journal.latest_time()
            if latest is not None:  # an event clock resumes where the journal ends
                self.clock.observe(latest)
            self.status.remapped_messages = self.ingest.recover()
            await self.deliverer.start()
            await self._listen()
            self.status.ready = True
            await starting
            self._engine_started = True
            try:
                ready = await self._loop.run_in_executor(None, self.engine.wait_ready)
            except EngineProcessError:
                await self.stop()
                raise
            self.status.recovered_from = ready.recovered_from
            self.status.recovered_inputs = ready.recovered_inputs
        else:
            self._recover(self.engine)
            self.engine.start()
            self._engine_started = True
            await self.deliverer.start()
            await self._listen()
            self.status.ready = True
        self.status.engine_ready = True
        self.status.recovery_s = time.perf_counter() - t0
        log.info(
            "pumpguard serving",
            mllp=self.status.mllp_port,
            http=self.status.http_port,
            recovered_inputs=self.status.recovered_inputs,
            recovery_s=round(self.status.recovery_s, 3),
        )

    def _recover(self, worker: EngineWorker) -> None:
        """Newest snapshot of this pack and code, then every journal input after it."""
        done = recover(worker, self.journal)
        self.status.recovered_from = done.from_position
        self.status.recovered_inputs = done.inputs
        self.status.remapped_messages = self.ingest.recover()

    async def _listen(self) -> None:
        from pumpguard.adapters.mllp import serve_mllp

        cfg = self.config
        if cfg.mllp is not None:
            server = await serve_mllp(
                self.ingest,
                cfg.mllp.host,
                cfg.mllp.port,
                ssl=server_ssl(cfg.mllp.tls),
                max_message_bytes=cfg.mllp.max_message_bytes,
                idle_timeout_s=cfg.mllp.idle_timeout_s,
                partial_timeout_s=cfg.mllp.partial_timeout_s,
                max_connections=cfg.mllp.max_connections,
            )
            self._closers.append(_closer(server))
            self.status.mllp_port = server.port
        if cfg.http is not None:
            from .http import start_http

            http = await start_http(
                self._http_app(), cfg.http.host, cfg.http.port, ssl=server_ssl(cfg.http.tls)
            )
            self._closers.append(http.close)
            self.status.http_port = http.port

    def _http_app(self) -> Any:
        from .http import HttpDeps, make_app
        from .journal import Inbound
        from .views import health_report

        cfg = self.config
        assert cfg.http is not None
        deps = HttpDeps(
            journal=self.journal,
            patient_view=self.engine.patient_view,
            ready=lambda: self.status.ready,
            health=lambda: health_report(
                self.engine, self.journal, self.clock.now(), recovered=self.status.engine_ready
            ),
            metrics=self.metrics,
            clock=self.clock,
            token=cfg.http.bearer(),
            inbound=Inbound,
            max_body_bytes=cfg.http.max_body_bytes,
            log_patient_ids=cfg.log_patient_ids,
        )
        return make_app(deps)

    # -- running ---------------------------------------------------------------
    def _committed(self, inputs: Sequence[LiveInput]) -> None:
        """The journal's writer thread, after each commit: the new inputs, in order.

        With the engine in its own process, an event clock here follows the events as
        they are journaled (the thread's engine moves a shared clock itself): the next
        message's receipt time is then the newest event time before it in the journal,
        as a replay of the journal would have it. The wall clock ignores this.
        """
        if isinstance(self.engine, EngineProcess):
            for inp in inputs:
                for event in inp.events:
                    self.clock.observe(event.ts.timestamp())
        self.engine.committed(inputs)

    def _outputs(self, out: Outputs) -> None:
        """Called on the engine thread with what one input raised: wake delivery, count."""
        for f in out.findings:
            self.metrics.finding(f.code, f.severity.value)
        for w in out.withdrawals:
            self.metrics.withdrawal(w.code, w.severity.value)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.deliverer.wake)

    # -- stop ------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop accepting, drain, snapshot, deliver within a bound, close. Safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.status.ready = False
        for close in reversed(self._closers):
            await close()
        self._closers.clear()
        self.ingest.snapshot()  # nothing is in flight once the listeners have closed
        if self._engine_started:
            self.engine.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.engine.join)
        if isinstance(self.engine, EngineProcess) and self.engine.finding_latency:
            log.info("event to finding", **self.engine.latency_summary())
        await self.deliverer.stop(timeout_s=self.config.drain_timeout_s)
        self.journal.close()
        log.info("pumpguard stopped")

    async def run_until_signal(
        self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """Start, serve until one of ``signals``, then stop.

        The handlers go in before the start: a SIGTERM while the engine is still
        recovering (the listeners already accept) waits for the start to finish, then
        stops cleanly, instead of killing the process with messages in flight.
        """
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in signals:
            loop.add_signal_handler(sig, done.set)
        try:
            await self.start()
            await done.wait()
        finally:
            await self.stop()


def _closer(server: Any) -> Callable[[], Awaitable[None]]:
    """An MLLP server's close: stop accepting, then let the connections answer and end."""

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return close


async def run_service(config: ServeConfig) -> int:
    """Start, serve until SIGTERM or SIGINT, stop; 0 on a clean stop."""
    service = Service(config)
    await service.run_until_signal()
    return 0
