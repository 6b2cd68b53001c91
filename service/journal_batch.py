"""How the journal's writer thread runs one batch of writes, and tells their waiters.

Split from :mod:`.journal` (which owns the thread, the queue and the transaction) so
each stays readable: here are the queued write itself, running a batch's writes
(optionally each in a savepoint, so one that raises fails alone), and settling a
waiter's future.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpguard.service.journal_records import JournalError, JournalInput

__all__ = ["Op", "Write", "apply_writes", "journal_error", "settle"]

Write = Callable[[sqlite3.Connection], tuple[Any, list[JournalInput]]]


@dataclass(slots=True)
class Op:
    """One queued write and the future its waiter holds."""

    write: Write
    future: concurrent.futures.Future[Any]


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


def settle(
    future: concurrent.futures.Future[Any],
    *,
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    """Resolve a waiter; one that gave up (cancelled) is simply not told."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
