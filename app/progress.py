"""How far a long run has come, on a terminal: rich progress bars on standard error.

One row per phase (read, sort, evaluate) and one per worker. Nothing at all
when standard error is not a terminal (a log, a pipe, CI) or with ``--quiet``:
the display is for a person watching, never part of what a run writes.
"""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["NULL_PROGRESS", "Progress", "RichProgress", "for_terminal"]


class Progress:
    """The display's interface; this base shows nothing (``enabled`` is false)."""

    enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, events: int, patients: int, *, done: bool = False) -> None:
        """Pass 1: events read so far, and how many patients they belong to."""

    def rejected(self) -> None:
        """Pass 1: one more record refused (records read = events + refused)."""

    def start(self, partitions: int, events: int) -> None:
        """Pass 2 begins: how many partitions and events it will sort and evaluate."""

    def worker(self, who: str, partition: int, phase: str, done: int, findings: int) -> None:
        """A worker's report: partition ``partition`` is at ``phase``, ``done`` events in."""

    def count(self, what: str, done: int, total: int | None = None) -> None:
        """A single-phase job (convert, drill generation): ``done`` items of ``total``."""

    def close(self) -> None:
        """Leave the terminal as it was."""


NULL_PROGRESS = Progress()


def for_terminal(quiet: bool = False, stream: IO[str] | None = None) -> Progress:
    """A rich display when ``stream`` (standard error) is a terminal and not ``quiet``."""
    stream = sys.stderr if stream is None else stream
    if quiet or not _isatty(stream):
        return NULL_PROGRESS
    return RichProgress(stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class RichProgress(Progress):
    """The rich display: phases with rate and time left, then one row per worker."""

    enabled = True

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        self._bars = Bars(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=16),
            TextColumn("{task.completed:>11,.0f}"),
            TextColumn("{task.fields[rate]:>9}"),
            TextColumn("left"),
            TimeRemainingColumn(compact=True),
            TextColumn("{task.fields[info]}"),
            console=Console(file=stream, stderr=True),
            transient=False,
            refresh_per_second=4,
        )
        self._bars.start()
        self._tasks: dict[str, Any] = {}
        self._partition_done: dict[int, int] = {}
        self._partition_findings: dict[int, int] = {}
        self._sorted: set[int] = set()
        self._workers: dict[str, dict[str, int]] = {}
        self._rejects = 0

    def _row(self, name: str, total: int | None) -> Any:
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = self._bars.add_task(name, total=total, rate="", info="")
        return task

    def _update(self, name: str, completed: int, total: int | None = None, info: str = "") -> None:
        task = self._row(name, total)
        if total is not None:
            self._bars.update(task, total=total)
        self._bars.update(task, completed=completed, info=info)
        speed = self._bars.tasks[self._index(task)].speed
        self._bars.update(task, rate=f"{speed:,.0f}/s" if speed else "")

    def _index(self, task: Any) -> int:
        return next(i for i, t in enumerate(self._bars.tasks) if t.id == task)

    def read(self, events: int, patients: int, *, done: bool = False) -> None:
        info = f"{events + self._rejects:,} records, {patients:,} patients"
        self._update("read", events, events if done else None, info)

    def rejected(self) -> None:
        self._rejects += 1

    def start(self, partitions: int, events: int) -> None:
        self._row("sort", partitions)
        self._row("evaluate", events)

    def worker(self, who: str, partition: int, phase: str, done: int, findings: int) -> None:
        if phase in ("sort", "done"):
            self._sorted.add(partition)
            self._update("sort", len(self._sorted), info="partitions")
        if phase in ("evaluate", "done"):
            self._partition_done[partition] = done
            self._partition_findings[partition] = findings
            total_findings = sum(self._partition_findings.values())
            self._update(
                "evaluate", sum(self._partition_done.values()), info=f"{total_findings:,} findings"
            )
        seen = self._workers.setdefault(who, {})
        seen[str(partition)] = done
        parts = len(seen)
        self._update(
            f"worker {who}"[:32],
            sum(seen.values()),
            info=f"partition {partition} ({phase}), {parts} partitions",
        )

    def count(self, what: str, done: int, total: int | None = None) -> None:
        self._update(what, done, total)

    def close(self) -> None:
        self._bars.stop()
