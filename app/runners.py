"""Where pass 2 runs: this process, a local process pool, or a Dask cluster.

Each runner is started before pass 1 reads the inputs, so worker processes
start, import pumpguard and build their engine (a second or two each) while
the parent is still reading: that time is not added to the run. Tasks are
:class:`~pumpguard.engine.partition.PartitionTask`, results come back as
partitions complete, in any order (the merge orders them).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.partition import PartitionResult, PartitionTask, run_partition, warm
from pumpguard.pipeline import UsageError
from pumpguard.progress import Progress

if TYPE_CHECKING:
    from pumpguard.partition import Scale

__all__ = ["DaskUnavailable", "Runner", "make_runner"]


class DaskUnavailable(UsageError):
    """``--dask`` was asked for but the ``dask`` extra is not installed (exit 2)."""


class Runner:
    """Runs partitions here, one after another, on this process's one engine."""

    local = True
    """Pass 2 runs in this process (so it may start during pass 1: ``InOrderPass``)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def start(self, pack: CompiledPack) -> None:
        """Get workers ready for ``pack`` without waiting for them."""

    def run(self, tasks: list[PartitionTask]) -> Iterator[PartitionResult]:
        report = _Direct(self.progress) if self.progress.enabled else None
        for task in tasks:
            yield run_partition(_with_report(task, report), worker="main")

    def close(self) -> None:
        """Stop what :meth:`start` started (also after a failure)."""


def make_runner(scale: Scale, progress: Progress) -> Runner:
    if scale.dask is not None:
        return DaskRunner(scale.dask, progress)
    if scale.workers > 1:
        return PoolRunner(scale.workers, progress)
    return Runner(progress)


class _Direct:
    """A worker's progress reports, handed straight to the display (same process)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def put(self, item: tuple[str, int, str, int, int]) -> None:
        self.progress.worker(*item)


def _with_report(task: PartitionTask, report: Any) -> PartitionTask:
    return task if report is None else replace(task, report=report)


class PoolRunner(Runner):
    """A spawn-started pool: workers import pumpguard afresh and hold no parent state."""

    local = False

    def __init__(self, workers: int, progress: Progress) -> None:
        super().__init__(progress)
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._manager: Any = None
        self._reports: Any = None
        self._stop = threading.Event()
        self._drain: threading.Thread | None = None

    def start(self, pack: CompiledPack) -> None:
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context)
        for _ in range(self.workers):  # each submit while all are busy starts one more worker
            self._pool.submit(warm, pack)
        if self.progress.enabled:
            self._manager = self._context.Manager()
            self._reports = self._manager.Queue()
            self._drain = threading.Thread(target=self._forward, daemon=True)
            self._drain.start()

    def run(self, tasks: list[PartitionTask]) -> Iterator[PartitionResult]:
        assert self._pool is not None, "start() first"
        futures: list[Future[PartitionResult]] = [
            self._pool.submit(run_partition, _with_report(t, self._reports)) for t in tasks
        ]
        for future in as_completed(futures):
            yield future.result()

    def _forward(self) -> None:
        """Hand the workers' progress reports to the display until the pool is done."""
        while not self._stop.is_set():
            try:
                item = self._reports.get(timeout=0.2)
            except (queue.Empty, EOFError, OSError):
                continue
            self.progress.worker(*item)

    def close(self) -> None:
        self._stop.set()
        if self._drain is not None:
            self._drain.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._manager is not None:
            self._manager.shutdown()


_LOCAL_WORKER_CONFIG = {
    # Every periodic callback of a worker, its nanny or the scheduler takes the GIL from
    # the evaluation (pure Python) or a core from it (2 cores, 5 processes). The profiler
    # samples every thread 100 times a second, the event-loop health check runs 50 times
    # a second, the system monitor twice: all for a dashboard nobody opens here.
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
}
"""Settings of a LocalCluster this command starts (a cluster users run keeps its own)."""


class DaskRunner(Runner):
    """``local`` / ``local:N`` starts a LocalCluster here; anything else names a scheduler."""

    local = False

    def __init__(self, address: str, progress: Progress) -> None:
        super().__init__(progress)
        try:
            self._dist: Any = importlib.import_module("distributed")  # the optional extra
        except ImportError as exc:
            msg = "--dask needs the dask extra: pip install 'pumpguard[dask]'"
            raise DaskUnavailable(msg) from exc
        self.address = address
        self._cluster: Any = None
        self._client: Any = None
        self._ready: threading.Thread | None = None
        self._failed: BaseException | None = None

    def start(self, pack: CompiledPack) -> None:
        self._ready = threading.Thread(target=self._connect, args=(pack,), daemon=True)
        self._ready.start()

    def _connect(self, pack: CompiledPack) -> None:
        try:
            dist = self._dist
            if self.address == "local" or self.address.startswith("local:"):
                dask: Any = importlib.import_module("dask")
                with dask.config.set(_LOCAL_WORKER_CONFIG):  # the nannies hand it on
                    self._cluster = dist.LocalCluster(
                        n_workers=int(self.address.partition(":")[2] or 2),
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,  # the audit shows its own progress
                        memory_limit=0,  # no memory monitor: spools bound the memory
                        silence_logs=logging.ERROR,
                    )
                self._client = dist.Client(self._cluster)
            else:
                self._client = dist.Client(self.address)
            self._client.run(warm, pack)
        except BaseException as exc:  # handed to run(), in the calling thread
            self._failed = exc

    def run(self, tasks: list[PartitionTask]) -> Iterator[PartitionResult]:
        if self._ready is not None:
            self._ready.join()
        if self._failed is not None:
            raise self._failed
        pending = self._dist.as_completed(
            [self._client.submit(_dask_partition, t, pure=False) for t in tasks]
        )
        for future in pending:
            result: PartitionResult = future.result()
            future.release()  # else the worker keeps every partition's findings to the end
            done = result.stats
            self.progress.worker(result.worker, result.index, "done", done.evaluated, done.findings)
            yield result

    def close(self) -> None:
        if self._ready is not None:
            self._ready.join()
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _dask_partition(task: PartitionTask) -> PartitionResult:
    """The Dask task: one partition, named by the worker that ran it."""
    dist: Any = importlib.import_module("distributed")
    return run_partition(task, worker=dist.get_worker().address)
