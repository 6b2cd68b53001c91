"""Replay at scale: partitions of patients on this process, a process pool or a Dask cluster.

Pass 1 runs here (the inputs are read once, in order, so rejects keep their
order); pass 2 runs one task per partition wherever :class:`Scale` says. The
findings of all partitions are then put in the file order (time, patient,
raise order; ``spec/findings.md``) and the conflict rejects in the replay
order, so the output is the same bytes for any worker or partition count.

Worker code is :func:`pumpguard.engine.partition.run_partition`: an importable
function over plain data (spool file names, the pickled pack, the end time),
since durable-rules objects do not pickle. Each worker process builds its own
engine once and resets it between partitions.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.partition import (
    InOrderPass,
    PartitionResult,
    PartitionTask,
    SpoolSet,
    Verdicts,
    peak_rss_mb,
)
from pumpguard.engine.rejects import Reject
from pumpguard.engine.replay import ReplayStats
from pumpguard.pipeline import UsageError
from pumpguard.progress import NULL_PROGRESS, Progress
from pumpguard.runners import DaskUnavailable, make_runner

__all__ = [
    "DEFAULT_PARTITIONS",
    "MAX_PARTITIONS",
    "DaskUnavailable",
    "Outcome",
    "Scale",
    "add_arguments",
    "log_resources",
    "replay",
    "scale_from_args",
]

DEFAULT_PARTITIONS = 64
"""Enough that the largest partition is a small share of a health system's input."""
MAX_PARTITIONS = 4096
"""Each partition is an open spool file during pass 1."""


@dataclass(frozen=True)
class Scale:
    """Where pass 2 runs: ``workers`` local processes, or a Dask cluster (``dask``)."""

    workers: int = 1
    dask: str | None = None
    partitions: int = DEFAULT_PARTITIONS
    tmp: Path | None = None
    in_order: bool = True
    """On this process, evaluate while reading as long as the input is in replay order
    (:class:`~pumpguard.engine.partition.InOrderPass`); False: always from the spools."""

    def describe(self) -> str:
        if self.dask is not None:
            return f"dask {self.dask}"
        return f"{self.workers} process" + ("es" if self.workers > 1 else "")


@dataclass
class Outcome:
    """The merged result of every partition."""

    findings: list[Finding]
    stats: ReplayStats
    engine_errors: int = 0
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    """Peak resident memory per worker (``parent`` for this process)."""
    decided_in_order: int = 0
    """Partitions evaluated while the input was read (not read back from their spool)."""


def replay(
    events: Iterable[tuple[Event, str, str]],
    pack: CompiledPack,
    *,
    until: float | None,
    scale: Scale,
    on_reject: Callable[[Reject], None],
    progress: Progress = NULL_PROGRESS,
) -> Outcome:
    """Both passes over ``events`` (event, input label, position); spool files always removed."""
    runner = make_runner(scale, progress)
    directory = Path(tempfile.mkdtemp(prefix="pumpguard-replay-", dir=scale.tmp))
    try:
        with (
            _terminate_as_exit(),
            SpoolSet(directory, scale.partitions) as spools,
            contextlib.ExitStack() as stack,
        ):
            runner.start(pack)  # workers start and build their engines while pass 1 reads
            # on this process, pass 2 runs during pass 1 while the input is in replay order
            local = runner.local and scale.in_order
            in_order = InOrderPass(pack, scale.partitions, until) if local else None
            stack.enter_context(_long_lived_frozen())
            for event, label, position in events:
                spooled = spools.add(event, label, position)
                if in_order is not None:
                    in_order.add(event, spooled)
                if not spools.events_read % 5000:
                    progress.read(spools.events_read, len(spools.patients))
            progress.read(spools.events_read, len(spools.patients), done=True)
            verdicts = spools.finish()
            end = until if until is not None else spools.max_ts
            stats = ReplayStats(
                events_read=spools.events_read,
                duplicates=verdicts.duplicates,
                end=end,
                spool_bytes=spools.spool_bytes,
            )
            done: list[PartitionResult] = []
            redo = None
            if in_order is not None:
                done, redo = in_order.results(verdicts, spools.counts, spools.patients, end)
            tasks = _tasks(spools, verdicts, pack, until, end, only=redo)
            progress.start(len(tasks) + len(done), sum(spools.counts) - verdicts.duplicates)
            for result in done:
                progress.worker(
                    result.worker,
                    result.index,
                    "done",
                    result.stats.evaluated,
                    result.stats.findings,
                )
            results = done + list(runner.run(tasks))
        outcome = _merge(results, stats, on_reject)
        outcome.decided_in_order = len(done)
        return outcome
    finally:
        runner.close()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _long_lived_frozen() -> Iterator[None]:
    """What is alive once the engine is built (modules, the pack, the engine, its
    rulesets' Python side) is set aside from the garbage collector for the run.

    Nothing of it is freed before the run ends, yet every full collection walked
    it again: about a tenth of a replay's time on one core. Unfrozen at the end,
    so a caller's process (a test run, a notebook) collects as before.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM ends the run through ``finally`` (spool files removed), not on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tasks(
    spools: SpoolSet,
    verdicts: Verdicts,
    pack: CompiledPack,
    until: float | None,
    end: float | None,
    *,
    only: set[int] | None = None,
) -> list[PartitionTask]:
    """One task per non-empty partition (or per partition in ``only``), largest first
    (the pool finishes evenly)."""
    tasks = [
        PartitionTask(
            index=i,
            spool=str(spools.paths[i]),
            sources=tuple(spools.sources),
            pack=pack,
            until=until,
            end=end,
            events=count,
            dropped=verdicts.dropped[i].tobytes(),
            rejected=verdicts.rejected[i].tobytes(),
        )
        for i, count in enumerate(spools.counts)
        if count and (only is None or i in only)
    ]
    return sorted(tasks, key=lambda t: (-t.events, t.index))


def _merge(
    results: Sequence[PartitionResult], stats: ReplayStats, on_reject: Callable[[Reject], None]
) -> Outcome:
    """Every partition's findings in the file order, conflicts in the replay order."""
    for result in sorted(results, key=lambda r: r.index):
        stats.add(result.stats)
    conflicts = sorted((c for r in results for c in r.conflicts), key=lambda c: c[0])
    for _, reject in conflicts:
        on_reject(reject)
    keyed = sorted((f for r in results for f in r.findings), key=lambda f: f[0])
    rss: dict[str, float] = {"parent": peak_rss_mb()}
    for r in results:
        rss[r.worker] = max(rss.get(r.worker, 0.0), r.peak_rss_mb)
    return Outcome(
        [f for _, f in keyed],
        stats,
        engine_errors=sum(r.engine_errors for r in results),
        peak_rss_mb=rss,
    )


# -- command line --------------------------------------------------------------------


def add_arguments(parser: Any) -> None:
    """The replay's scale flags (``pumpguard replay --workers/--dask/--partitions/--tmp``)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="evaluate partitions in N processes on this machine (default 1)",
    )
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="evaluate on Dask: local[:N] starts a LocalCluster of N workers, "
        "tcp://HOST:8786 uses a running cluster (needs pumpguard[dask])",
    )
    parser.add_argument(
        "--partitions",
        type=_positive,
        default=DEFAULT_PARTITIONS,
        metavar="N",
        help=f"patient partitions (default {DEFAULT_PARTITIONS}); memory follows the largest",
    )
    parser.add_argument(
        "--tmp",
        type=Path,
        metavar="DIR",
        help="folder for the spool files (default: the system's); on a cluster, one every "
        "worker can read",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def log_resources(log: Any, scale: Scale, peak_rss_mb: dict[str, float]) -> None:
    """A log line apart from the summary (which is the same for every scale): what ran where."""
    log.info(
        "replay.resources",
        scale=scale.describe(),
        partitions=scale.partitions,
        peak_rss_mb={k: round(v, 1) for k, v in peak_rss_mb.items()},
    )


def scale_from_args(args: Any) -> Scale:
    """The :class:`Scale` the flags ask for (a bad address or folder: a usage error)."""
    dask = args.dask
    if dask is not None and not (
        dask == "local" or dask.startswith(("local:", "tcp://", "tls://", "ws://", "wss://"))
    ):
        msg = f"--dask {dask!r}: give local, local:N or a scheduler address like tcp://HOST:8786"
        raise UsageError(msg)
    if dask is not None and dask.startswith("local:") and not dask[6:].isdigit():
        msg = f"--dask {dask!r}: local:N needs a number of workers"
        raise UsageError(msg)
    if args.tmp is not None and not Path(args.tmp).is_dir():
        msg = f"--tmp {args.tmp}: not a folder"
        raise UsageError(msg)
    if args.partitions > MAX_PARTITIONS:
        msg = f"--partitions {args.partitions}: at most {MAX_PARTITIONS}"
        raise UsageError(msg)
    return Scale(workers=args.workers, dask=dask, partitions=args.partitions, tmp=args.tmp)


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"not a positive whole number: {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value
