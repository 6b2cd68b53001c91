"""How the journal's writer thread runs one batch of writes, and tells their waiters.

Split from :mod:`.journal` (which owns the thread, the queue and the transaction) so
each stays readable: here are the queued write itself, running a batch's writes
(optionally each in a savepoint, so one that raises fails alone), and settling a
waiter's future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpguard.service.journal_records import JournalError, JournalInput

__all__ = [
    "LoopWaiter",
    "Op",
    "Waiter",
    "Write",
    "apply_writes",
    "journal_error",
    "settle",
    "settle_all",
]

Write = Callable[[sqlite3.Connection], tuple[Any, list[JournalInput]]]


@dataclass(frozen=True, slots=True)
class LoopWaiter:
    """A waiter on an event loop: its future is resolved on that loop, and the waiters of
    one batch on one loop hear in one callback (one wake-up of the loop, not one each)."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


Waiter = concurrent.futures.Future[Any] | LoopWaiter


@dataclass(slots=True)
class Op:
    """One queued write, who waits for it, and the dedupe key of the message it stores."""

    write: Write
    future: Waiter
    key: str | None = None


def apply_writes(
    conn: sqlite3.Connection, batch: list[Op], *, isolate: bool, path: Path
) -> tuple[list[tuple[Op, Any, BaseException | None]], list[JournalInput]] | None:
    """Run each write; None when one raised and ``isolate`` is off (start over)."""
    done: list[tuple[Op, Any, BaseException | None]] = []
    made: list[JournalInput] = []
    for op in batch:
        if isolate:
            conn.execute("SAVEPOINT op")
        try:
            result, inputs = op.write(conn)
        except Exception as exc:
            if not isolate:
                return None
            conn.execute("ROLLBACK TO op")
            done.append((op, None, journal_error(exc, path)))
        else:
            made.extend(inputs)
            done.append((op, result, None))
        if isolate:
            conn.execute("RELEASE op")
    return done, made


def journal_error(exc: Exception, path: Path) -> BaseException:
    """sqlite3 errors become JournalError; the journal's own errors and defects pass as is."""
    if isinstance(exc, sqlite3.Error):
        error = JournalError(f"journal {path}: {exc}")
        error.__cause__ = exc
        return error
    return exc


Outcome = tuple[Any, BaseException | None]


def settle(waiter: Waiter, *, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a waiter; one that gave up (cancelled) is simply not told."""
    settle_all([(waiter, (result, error))])


def settle_all(outcomes: Sequence[tuple[Waiter, Outcome]]) -> None:
    """Resolve each waiter with its (result, error): loop waiters in one call per loop."""
    on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
    for waiter, outcome in outcomes:
        if isinstance(waiter, LoopWaiter):
            on_loops.setdefault(waiter.loop, []).append((waiter.future, outcome))
            continue
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            _resolve(waiter, outcome)
    for loop, items in on_loops.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve_on_loop, items)


def _resolve_on_loop(items: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, outcome in items:
        if not future.done():  # a cancelled caller is simply not told
            _resolve(future, outcome)


def _resolve(
    future: concurrent.futures.Future[Any] | asyncio.Future[Any], outcome: Outcome
) -> None:
    result, error = outcome
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
