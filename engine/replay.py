"""Audit replay: any number of inputs, one stream, exact and repeatable.

The spec orders each patient's events by ``ts`` whatever their order in the
input, and asks that the same id with the same content count once while the
same id with other content is rejected in every version. Both need the whole
input before the first event is evaluated, so replay takes two passes:

1. every valid event is written, in canonical JSON, to a spool file, and only
   a few integers per event stay in memory (a :class:`SpoolIndex`: its time,
   patient, kind, offset and input order);
2. the index is sorted in the replay order (:func:`.ordering.replay_key`) and
   the spool is read back in that order into the engine (:func:`evaluate`).

:class:`Replay` does both in one process over one spool, with the duplicate
check in memory; the partitioned replay (:mod:`.partition`) runs pass 2 once
per partition of patients, from spool files in the same line format.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import IO

from .core import Engine
from .events import Event, validate_event_json
from .findings import Finding
from .ordering import (
    INDEX_MASK,
    instant_us,
    instant_us_at,
    patient_ranks,
    replay_key,
    same_second_rank,
)
from .rejects import Reject

__all__ = [
    "ClockStep",
    "RejectCallback",
    "Replay",
    "ReplayStats",
    "SpoolIndex",
    "SpoolLine",
    "canonical_bytes",
    "conflict_reject",
    "digest64",
    "drive",
    "evaluate",
    "quoted",
    "spool_line",
    "time_ordered",
]

PROGRESS_EVERY = 2000
"""Events between two progress reports of a replay."""

RejectCallback = Callable[[Reject], None]
"""(source, position, reason, event_id) for a record replay itself refuses."""


def digest64(data: bytes) -> int:
    """A 64-bit digest, the same in every process (ids and contents, for the duplicate check)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def canonical_bytes(event: Event) -> bytes:
    """The event as the spool keeps it: canonical JSON without the ignored extra fields.

    The model's serialiser writes the bytes ``model_dump_json`` would decode to text.
    """
    extra = event.__pydantic_extra__
    return event.__pydantic_serializer__.to_json(event, exclude=set(extra) if extra else None)


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
    spool_bytes: int = 0

    def add(self, other: ReplayStats) -> None:
        """Fold one partition's evaluation counts into the whole run's."""
        self.conflicting += other.conflicting
        self.after_until += other.after_until
        self.evaluated += other.evaluated
        self.findings += other.findings
        self.patients += other.patients


# -- spool lines -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpoolLine:
    """One spooled event: where it came from, its sort fields, and its canonical JSON."""

    seq: int
    source: int
    ts_us: int
    kind: int
    patient_json: bytes
    position_json: bytes
    data: bytes

    @classmethod
    def parse(cls, line: bytes) -> SpoolLine:
        return cls.from_fields(line.rstrip(b"\n").split(b"\t", 6))

    @classmethod
    def from_fields(cls, fields: list[bytes]) -> SpoolLine:
        """The line from its seven tab-separated fields (already split)."""
        seq, src, ts, kind, patient, position, data = fields
        return cls(int(seq), int(src), int(ts), int(kind), patient, position, data)

    @property
    def patient_id(self) -> str:
        """Decoded only when asked (a conflict): two JSON parses per event cost 8 % of replay."""
        return str(json.loads(self.patient_json))

    @property
    def position(self) -> str:
        return str(json.loads(self.position_json))


def spool_line(
    seq: int,
    source: int,
    patient_json: bytes,
    position: str,
    data: bytes,
    *,
    ts_us: int,
    kind: int,
) -> bytes:
    """The spool's line for one event (patient and position JSON-quoted: no raw tab or newline).

    ``patient_json``: :func:`quoted` of the patient id, which a caller spooling many
    events of one patient works out once. ``ts_us`` and ``kind``: the event's instant
    (:func:`.ordering.instant_us`) and same-second rank, which every caller has
    already worked out for its index.
    """
    return b"%d\t%d\t%d\t%d\t%s\t%s\t%s\n" % (
        seq,
        source,
        ts_us,
        kind,
        patient_json,
        quoted(position),
        data,
    )


def quoted(text: str) -> bytes:
    """``text`` as a JSON string in ASCII bytes (what ``json.dumps`` writes), never a raw tab
    or newline."""
    return encode_basestring_ascii(text).encode("ascii")


class SpoolIndex:
    """A few integers per spooled event, enough to read the spool back in replay order."""

    def __init__(self) -> None:
        self.patients: dict[str, int] = {}
        self._ts = array("q")
        self._patient = array("I")
        self._kind = array("B")
        self._offset = array("q")

    def __len__(self) -> int:
        return len(self._ts)

    def add(self, ts_us: int, patient_id: str, kind: int, offset: int) -> None:
        """Index one spooled line; lines must be added in input order (the last tie-break)."""
        self._ts.append(ts_us)
        self._patient.append(self.patients.setdefault(patient_id, len(self.patients)))
        self._kind.append(kind)
        self._offset.append(offset)

    def offsets_in_order(self) -> Iterator[int]:
        """The spool offsets, sorted in the replay order (:func:`.ordering.replay_key`)."""
        rank = patient_ranks(self.patients)
        ranks = [rank[p] for p in self.patients]  # by the index add() gave each patient
        pat, kind = self._patient, self._kind
        order = sorted(replay_key(ts, ranks[pat[i]], kind[i], i) for i, ts in enumerate(self._ts))
        offsets = self._offset
        for packed in order:
            yield offsets[packed & INDEX_MASK]

    def clear(self) -> None:
        for column in (self._ts, self._patient, self._kind, self._offset):
            del column[:]
        self.patients.clear()


def conflict_reject(line: SpoolLine, sources: list[str] | tuple[str, ...], event_id: str) -> Reject:
    """The reject for one version of an id seen with two contents."""
    return Reject(
        sources[line.source],
        line.position,
        f"event_id {event_id!r} appears with different content; every version is rejected",
        event_id=event_id,
    )


Verdict = Callable[[SpoolLine, Event], bool]
"""Whether a spooled event is one version of a conflicting id (rejected, not evaluated)."""


def evaluate(
    engine: Engine,
    spool: IO[bytes],
    index: SpoolIndex,
    *,
    conflicting: Verdict | None,
    on_conflict: Callable[[SpoolLine, Event], None],
    until: float | None,
    end: float | None,
    stats: ReplayStats,
    on_progress: Callable[[ReplayStats], None] | None = None,
) -> Iterator[Finding]:
    """Pass 2 over one spool: events in replay order into ``engine``, then the clock to ``end``.

    ``conflicting`` is None when no spooled event can be a conflict (the line's
    other fields are then never parsed).

    ``on_progress`` is told the counts every few thousand events (a progress display).
    """
    stats.patients += len(index.patients)

    validate = validate_event_json

    def events() -> Iterator[Event]:
        for offset in index.offsets_in_order():
            spool.seek(offset)
            fields = spool.readline().rstrip(b"\n").split(b"\t", 6)
            event: Event = validate(fields[6])
            if conflicting is not None:
                line = SpoolLine.from_fields(fields)
                if conflicting(line, event):
                    stats.conflicting += 1
                    on_conflict(line, event)
                    continue
            if until is not None and event.ts.timestamp() > until:
                stats.after_until += 1
                continue
            stats.evaluated += 1
            if on_progress is not None and not stats.evaluated % PROGRESS_EVERY:
                on_progress(stats)
            yield event

    for finding in drive(engine, events(), end=end):
        stats.findings += 1
        yield finding


# -- one process -------------------------------------------------------------------


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
        self._index = SpoolIndex()
        self._seen: dict[int, int] = {}
        self._conflicts: set[int] = set()
        self._max_ts: float | None = None

    def add(self, event: Event, source: str, position: str) -> None:
        """Pass 1: remember one valid event (duplicates of identical content count once)."""
        self.stats.events_read += 1
        data = canonical_bytes(event)
        key = digest64(event.event_id.encode())
        content = digest64(data)
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
        ts = event.ts.timestamp()
        self._max_ts = ts if self._max_ts is None else max(self._max_ts, ts)
        seq = len(self._index)
        offset = self._spool.tell()
        kind = same_second_rank(event.type)
        ts_us = instant_us_at(event.ts, ts)
        self._index.add(ts_us, event.patient_id, kind, offset)
        self._spool.write(
            spool_line(seq, src, quoted(event.patient_id), position, data, ts_us=ts_us, kind=kind)
        )

    def run(self, on_reject: RejectCallback) -> Iterator[Finding]:
        """Pass 2: evaluate in order, then let the clock reach the end of the input."""
        end = self.until if self.until is not None else self._max_ts
        self.stats.end = end
        self.stats.spool_bytes = self._spool.tell()
        self._spool.flush()
        conflicts = self._conflicts
        yield from evaluate(
            self.engine,
            self._spool,
            self._index,
            conflicting=lambda _line, event: digest64(event.event_id.encode()) in conflicts,
            on_conflict=lambda line, event: on_reject(
                conflict_reject(line, self._sources, event.event_id)
            ),
            until=self.until,
            end=end,
            stats=self.stats,
        )
        self.close()

    def close(self) -> None:
        self._spool.close()
        self._seen.clear()
        self._index.clear()


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
        yield from engine.submit(event, at=at)
        latest = at if latest is None else max(latest, at)
    if end is None:
        end = latest
    if end is not None:
        yield from engine.advance(end)


def time_ordered(events: Iterable[Event]) -> list[Event]:
    """Events in the replay's order (:func:`.ordering.replay_key`), for streams held in memory.

    The same key the spooled replay sorts by, so a drill and an audit order a
    stream alike; ties keep their input order.
    """
    items = list(events)
    ranks = patient_ranks(e.patient_id for e in items)
    keys = sorted(
        replay_key(instant_us(e.ts), ranks[e.patient_id], same_second_rank(e.type), i)
        for i, e in enumerate(items)
    )
    return [items[k & INDEX_MASK] for k in keys]
