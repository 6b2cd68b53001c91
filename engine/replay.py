"""Audit replay: any number of inputs, one stream, exact and repeatable.

The spec orders each patient's events by ``ts`` whatever their order in the
input, and asks that the same id with the same content count once while the
same id with other content is rejected in every version. Both need the whole
input before the first event is evaluated, so replay takes two passes:

1. every valid event is written, in canonical JSON, to a spool file, and only
   a few integers per event stay in memory (its time, patient, offset, and the
   digests of its id and content);
2. the index is sorted by (time, patient, kind, input order) and the spool is
   read back in that order into the engine.

The patient tie-break makes the output independent of how lines from different
patients at the same instant were interleaved, so a shuffled log gives
byte-identical findings. Within one patient's second, documentation comes
before pump acts (:mod:`.ordering`), so a premedication or an order listed
after the start it precedes, or in another file, counts the same. Events of the
same kind at the same instant keep their input order (spec/events.md).
"""

from __future__ import annotations

import hashlib
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from .core import Engine
from .events import Event, event_adapter
from .findings import Finding
from .ordering import same_second_rank
from .rejects import Reject

__all__ = ["ClockStep", "RejectCallback", "Replay", "ReplayStats", "drive", "time_ordered"]

RejectCallback = Callable[[Reject], None]
"""(source, position, reason, event_id) for a record replay itself refuses."""

_TS_BIAS = 1 << 62  # every year from 1 to 9999, in microseconds, sorts as a non-negative integer


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


@dataclass
class ReplayStats:
    """What a replay read and did, for the summary line."""

    events_read: int = 0
    duplicates: int = 0
    conflicting: int = 0
    after_until: int = 0
    evaluated: int = 0
    findings: int = 0
    patients: int = 0
    end: float | None = None


class Replay:
    """Collects events from any sources, then evaluates them in event-time order."""

    def __init__(self, engine: Engine, *, until: float | None = None) -> None:
        self.engine = engine
        self.until = until
        self.stats = ReplayStats()
        # closed by run() or close(); a replay owns its spool for its whole life
        self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="pumpguard-replay-")  # noqa: SIM115
        self._sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self._patients: dict[str, int] = {}
        self._ts = array("q")
        self._patient = array("I")
        self._kind = array("B")
        self._offset = array("q")
        self._seen: dict[int, int] = {}
        self._conflicts: set[int] = set()
        self._max_ts: float | None = None

    def add(self, event: Event, source: str, position: str) -> None:
        """Pass 1: remember one valid event (duplicates of identical content count once)."""
        self.stats.events_read += 1
        extra = event.model_extra
        data = event.model_dump_json(exclude=set(extra) if extra else None).encode()
        key = _digest(event.event_id.encode())
        content = _digest(data)
        known = self._seen.get(key)
        if known is not None:
            if known == content:
                self.stats.duplicates += 1
                return
            self._conflicts.add(key)
        else:
            self._seen[key] = content
        src = self._source_index.get(source)
        if src is None:
            src = self._source_index[source] = len(self._sources)
            self._sources.append(source)
        pid = self._patients.setdefault(event.patient_id, len(self._patients))
        ts = event.ts.timestamp()
        self._max_ts = ts if self._max_ts is None else max(self._max_ts, ts)
        self._offset.append(self._spool.tell())
        self._ts.append(round(ts * 1_000_000) + _TS_BIAS)
        self._patient.append(pid)
        self._kind.append(same_second_rank(event.type))
        self._spool.write(b"%d\t%s\t%s\n" % (src, position.encode(), data))

    def run(self, on_reject: RejectCallback) -> Iterator[Finding]:
        """Pass 2: evaluate in order, then let the clock reach the end of the input."""
        end = self.until if self.until is not None else self._max_ts
        self.stats.end = end
        for finding in drive(self.engine, self._in_order(on_reject), end=end):
            self.stats.findings += 1
            yield finding
        self.close()

    def _in_order(self, on_reject: RejectCallback) -> Iterator[Event]:
        """The spooled events to evaluate, in replay order; conflicts are rejected here."""
        rank = {pid: r for r, (_, pid) in enumerate(sorted(self._patients.items()))}
        self.stats.patients = len(rank)
        ranks = [rank[p] for p in range(len(self._patients))]
        # One packed integer per event sorts in a fraction of the memory of tuples.
        pat, kind = self._patient, self._kind
        order = sorted(
            (ts << 72) | (ranks[pat[i]] << 40) | (kind[i] << 32) | i
            for i, ts in enumerate(self._ts)
        )
        mask = (1 << 32) - 1
        spool = self._spool
        spool.flush()
        until = self.until
        for packed in order:
            i = packed & mask
            spool.seek(self._offset[i])
            src, position, data = spool.readline().rstrip(b"\n").split(b"\t", 2)
            event: Event = event_adapter.validate_json(data)
            if _digest(event.event_id.encode()) in self._conflicts:
                self.stats.conflicting += 1
                on_reject(
                    Reject(
                        self._sources[int(src)],
                        position.decode(),
                        f"event_id {event.event_id!r} appears with different content; "
                        "every version is rejected",
                        event_id=event.event_id,
                    )
                )
                continue
            if until is not None and event.ts.timestamp() > until:
                self.stats.after_until += 1
                continue
            self.stats.evaluated += 1
            yield event

    def close(self) -> None:
        self._spool.close()
        self._seen.clear()


ClockStep = Callable[[float], None]
"""Moves a simulated clock to an instant (epoch seconds) before the engine is told of it."""


def drive(
    engine: Engine,
    events: Iterable[Event],
    *,
    end: float | None = None,
    step: ClockStep | None = None,
) -> Iterator[Finding]:
    """The one loop that runs an engine over a time-ordered stream of events.

    Each event is submitted in the order given (the engine fires the deadlines
    due strictly before it: events at time t come before deadlines at t). With
    ``step``, a simulated clock is moved to each deadline and each event before
    the engine sees it, and a deadline due before an event is fired on its own,
    the way the live system fires it, not only when the next event comes.

    At the end the clock reaches ``end``, by default the latest event time: a
    deadline after the end of the input has not passed.
    """
    latest: float | None = None
    for event in events:
        at = event.ts.timestamp()
        if step is not None:
            due = engine.next_due()
            while due is not None and due < at:
                step(due)
                yield from engine.advance(due)
                due = engine.next_due()
            step(at)
        yield from engine.submit(event)
        latest = at if latest is None else max(latest, at)
    if end is None:
        end = latest
    if end is not None:
        yield from engine.advance(end)


def time_ordered(events: Iterable[Event]) -> list[Event]:
    """Events in the replay's order: time, patient, documentation before pump acts in a second.

    The same order :class:`Replay` makes with its packed sort keys, for streams
    small enough to sort in memory (drills); ties keep their input order.
    """
    return sorted(events, key=lambda e: (e.ts, e.patient_id, same_second_rank(e.type)))
