"""Partitioned replay: patients split by a stable hash, each partition evaluated on its own.

Patients are independent (state, deadlines and episodes are per patient), so
one partition's findings do not depend on another's. Pass 1
(:class:`SpoolSet`) writes each event to its partition's spool file and a
small record (id digest, content digest, input order) to an id bucket; the
duplicate check then runs bucket by bucket over the whole input, so an id
seen in two partitions is still a conflict, and memory follows a bucket, not
the input. Pass 2 (:func:`run_partition`) runs in any process: it needs only
the task (file names, the pack, the end time), never the parent's objects.

The end time of the whole input is handed to every partition, so a deadline
after a partition's own last event fires as it would in one process.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from array import array
from collections.abc import Callable, KeysView, Set
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from .core import ENGINE_ERROR_CODE, Engine
from .events import Event
from .findings import Finding
from .ordering import instant_us, instant_us_at, same_second_rank
from .pack import CompiledPack
from .rejects import Reject
from .replay import (
    ReplayStats,
    SpoolIndex,
    SpoolLine,
    canonical_bytes,
    conflict_reject,
    evaluate,
    quoted,
    spool_line,
)

__all__ = [
    "FindingKey",
    "InOrderPass",
    "PartitionResult",
    "PartitionTask",
    "ProgressReport",
    "SpoolSet",
    "Spooled",
    "Verdicts",
    "finding_key",
    "partition_of",
    "peak_rss_mb",
    "run_partition",
    "warm",
]

ID_BUCKETS = 64
"""Files the duplicate check is split into (10,000,000 events: about 160,000 ids each)."""

_RECORD = struct.Struct("<qqqI")  # id digest, content digest, input order, partition
_BUCKET_MASK = ID_BUCKETS - 1
"""The id digests are this process's ``hash()`` (SipHash, 64 bits, keyed per process):
the buckets are written and checked by the process that spooled them, and the
keyed hash costs a third of a blake2b call per event."""
_BUFFER = 1 << 16

FindingKey = tuple[int, str, int]
"""(instant in microseconds, patient_id, raise order in its partition): the file order."""

Spooled = tuple[int, float, int, int]
"""What spooling an event worked out: (partition, epoch seconds, instant in µs, kind rank)."""

RejectKey = tuple[int, str, int, int]
"""(instant, patient_id, same-second kind, input order): the replay order of a conflict."""


def partition_of(patient_id: str, partitions: int) -> int:
    """The patient's partition: CRC-32 of its id, the same in every process and run."""
    return zlib.crc32(patient_id.encode("utf-8", "surrogatepass")) % partitions


def finding_key(finding: Finding, order: int) -> FindingKey:
    """Where a finding goes in the file: by time, then patient, then raise order."""
    return (instant_us(_finding_time(finding)), finding.patient_id, order)


def _finding_time(finding: Finding) -> datetime:
    """The finding's instant, whether ``ts`` is an aware datetime or RFC 3339 text.

    Text from years before 1000 may carry an unpadded year (``500-01-01T...``).
    """
    value: object = finding.ts
    if isinstance(value, datetime):
        return value
    year, rest = str(value).split("-", 1)
    return datetime.fromisoformat(f"{int(year):04d}-{rest}")


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB; 0 where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- pass 1: spool files and the duplicate check ------------------------------------


@dataclass
class Verdicts:
    """What the duplicate check decided, per partition: input orders to drop or reject."""

    dropped: list[array[int]]
    rejected: list[array[int]]
    duplicates: int = 0


class SpoolSet:
    """Pass 1: one spool file per partition and one id file per bucket, in ``directory``."""

    def __init__(self, directory: Path, partitions: int) -> None:
        if not 1 <= partitions <= 4096:
            msg = f"partitions must be between 1 and 4096, not {partitions}"
            raise ValueError(msg)
        self.directory = directory
        self.partitions = partitions
        self.paths = [directory / f"partition-{i:04d}.spool" for i in range(partitions)]
        self._ids = [directory / f"ids-{b:02d}.bin" for b in range(ID_BUCKETS)]
        self._files: list[IO[bytes]] = []
        self._id_files: list[IO[bytes]] = []
        self.counts = [0] * partitions
        self.sources: list[str] = []
        self._source_index: dict[str, int] = {}
        self._patient_parts: dict[str, tuple[int, bytes]] = {}
        """Per patient seen: its partition and its quoted id."""
        self.events_read = 0
        self.max_ts: float | None = None
        self.spool_bytes = 0

    @property
    def patients(self) -> KeysView[str]:
        """The patients spooled so far."""
        return self._patient_parts.keys()

    def __enter__(self) -> SpoolSet:
        self._files = [p.open("wb", buffering=_BUFFER) for p in self.paths]
        self._id_files = [p.open("wb", buffering=_BUFFER) for p in self._ids]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, event: Event, source: str, position: str) -> Spooled:
        """Spool one valid event in its patient's partition; note its id for the check.

        Per event this is the whole of pass 1's cost beside validation, so what
        depends only on the patient (partition, quoted id) is worked out once.
        """
        seq = self.events_read
        self.events_read = seq + 1
        data = canonical_bytes(event)
        patient = event.patient_id
        known = self._patient_parts.get(patient)
        if known is None:
            known = self._patient_parts[patient] = (
                partition_of(patient, self.partitions),
                quoted(patient),
            )
        part, patient_json = known
        src = self._source_index.get(source)
        if src is None:
            src = self._source_index[source] = len(self.sources)
            self.sources.append(source)
        moment = event.ts
        ts = moment.timestamp()
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        ident = hash(event.event_id)
        self._id_files[ident & _BUCKET_MASK].write(_RECORD.pack(ident, hash(data), seq, part))
        ts_us = instant_us_at(moment, ts)
        kind = same_second_rank(event.type)
        self._files[part].write(
            spool_line(seq, src, patient_json, position, data, ts_us=ts_us, kind=kind)
        )
        self.counts[part] += 1
        return part, ts, ts_us, kind

    def finish(self) -> Verdicts:
        """Close the spools and run the duplicate check over the whole input, bucket by bucket."""
        self.close()
        self.spool_bytes = sum(p.stat().st_size for p in (*self.paths, *self._ids))
        verdicts = Verdicts(
            [array("q") for _ in range(self.partitions)],
            [array("q") for _ in range(self.partitions)],
        )
        for path in self._ids:
            verdicts.duplicates += _check_bucket(path.read_bytes(), verdicts)
            path.unlink()
        return verdicts

    def close(self) -> None:
        for fh in (*self._files, *self._id_files):
            fh.close()


def _check_bucket(records: bytes, verdicts: Verdicts) -> int:
    """The spec's duplicate rule over one bucket, records in input order.

    A later copy identical to an id's first version is a duplicate (dropped);
    any other content makes the id a conflict, and every version kept of it
    is rejected.
    """
    first: dict[int, int] = {}
    conflicts: set[int] = set()
    duplicates = 0
    for ident, content, seq, part in _RECORD.iter_unpack(records):
        known = first.get(ident)
        if known is None:
            first[ident] = content
        elif known == content:
            verdicts.dropped[part].append(seq)
            duplicates += 1
        else:
            conflicts.add(ident)
    if conflicts:
        seen: set[int] = set()
        for ident, content, seq, part in _RECORD.iter_unpack(records):
            if ident not in conflicts:
                continue
            if ident not in seen or content != first[ident]:
                seen.add(ident)
                verdicts.rejected[part].append(seq)
    return duplicates


# -- pass 2: one partition, in any process --------------------------------------------


class ProgressReport(Protocol):
    """Where a worker tells how far it has come: a queue, or a callable's wrapper."""

    def put(self, item: tuple[str, int, str, int, int]) -> None:
        """(worker, partition, phase, events done, findings so far)."""


@dataclass(frozen=True)
class PartitionTask:
    """Everything a worker needs for one partition; plain data, picklable."""

    index: int
    spool: str
    sources: tuple[str, ...]
    pack: CompiledPack
    until: float | None
    end: float | None
    events: int
    dropped: bytes = b""
    rejected: bytes = b""
    report: Any = None


@dataclass
class PartitionResult:
    """One partition's findings and conflict rejects, each with its place in the file order."""

    index: int
    worker: str
    stats: ReplayStats
    findings: list[tuple[FindingKey, Finding]] = field(default_factory=list)
    conflicts: list[tuple[RejectKey, Reject]] = field(default_factory=list)
    engine_errors: int = 0
    peak_rss_mb: float = 0.0


_ENGINES: dict[tuple[str, str, str | None, str | None], Engine] = {}
"""One engine per pack per worker process, reset between partitions (rulesets are never freed)."""


def _engine_for(pack: CompiledPack) -> Engine:
    ref = pack.ref
    key = (ref.sha256, ref.edition, ref.parameters_sha256, ref.site)
    engine = _ENGINES.get(key)
    if engine is None:
        engine = _ENGINES[key] = Engine(pack)
    else:
        engine.reset()
    return engine


def warm(pack: CompiledPack) -> int:
    """Build this process's engine for ``pack`` ahead of its first partition; the pid."""
    _engine_for(pack)
    return os.getpid()


def _scan(fh: IO[bytes], dropped: set[int]) -> SpoolIndex:
    """Index a partition's spool (its lines are in input order), leaving duplicates out."""
    index = SpoolIndex()
    names: dict[bytes, str] = {}
    offset = 0
    for line in fh:
        seq, _src, ts, kind, patient, _rest = line.split(b"\t", 5)
        if not dropped or int(seq) not in dropped:
            name = names.get(patient)
            if name is None:
                name = names[patient] = json.loads(patient)
            index.add(int(ts), name, int(kind), offset)
        offset += len(line)
    return index


def run_partition(task: PartitionTask, worker: str | None = None) -> PartitionResult:
    """Pass 2 for one partition: index, sort, evaluate; findings keyed for the merge."""
    who = worker or f"pid {os.getpid()}"
    engine = _engine_for(task.pack)
    report: Callable[[str, int, int], None] = _reporter(task, who)
    result = PartitionResult(task.index, who, ReplayStats())
    rejected = set(array("q", task.rejected))

    def on_conflict(line: SpoolLine, event: Event) -> None:
        key = (line.ts_us, line.patient_id, line.kind, line.seq)
        result.conflicts.append((key, conflict_reject(line, task.sources, event.event_id)))

    with open(task.spool, "rb") as fh:
        index = _scan(fh, set(array("q", task.dropped)))
        report("sort", len(index), 0)
        found = result.findings
        for finding in evaluate(
            engine,
            fh,
            index,
            conflicting=(lambda line, _event: line.seq in rejected) if rejected else None,
            on_conflict=on_conflict,
            until=task.until,
            end=task.end,
            stats=result.stats,
            on_progress=lambda s: report("evaluate", s.evaluated, s.findings),
        ):
            found.append((finding_key(finding, len(found)), finding))
    report("done", result.stats.evaluated, result.stats.findings)
    result.engine_errors = engine.error_count
    result.peak_rss_mb = peak_rss_mb()
    return result


def _reporter(task: PartitionTask, who: str) -> Callable[[str, int, int], None]:
    sink = task.report
    if sink is None:
        return lambda _phase, _done, _findings: None
    return lambda phase, done, findings: sink.put((who, task.index, phase, done, findings))


# -- pass 2 during pass 1, while the input is in replay order ------------------------

IN_ORDER_PATIENTS = 2_000
"""Patients the in-order pass holds at once (about 45 KB each after a course; a
partition's engine in pass 2 holds only its own): a partition whose first patient
would be one more is left to pass 2."""


IN_ORDER_BATCH = 1024
"""Events read before the in-order pass evaluates them, in one run of engine work."""


class InOrderPass:
    """Pass 2 run during pass 1, for the partitions whose events come in the replay order.

    Most audit inputs are already time-ordered (an export, a day's capture, a
    stream merged by time). Then the engine can take each event as it is read,
    with no spool read back, no second validation and no sort: one engine for
    every patient gives each patient the events and deadlines that its
    partition's engine would (patients are independent; the order across
    patients at one instant is the only difference, and it decides nothing).

    What this pass cannot decide is left to pass 2, partition by partition
    (:meth:`results` names them): a partition with an event out of the replay
    order (earlier than an event already evaluated, or a same-second kind after
    a later one of its patient), a partition whose first patient would be one
    more than :data:`IN_ORDER_PATIENTS`, and a partition where the duplicate
    check drops or rejects an event. Events are spooled either way, so nothing
    is lost; when every partition is left to pass 2, this pass stops.
    """

    def __init__(self, pack: CompiledPack, partitions: int, until: float | None) -> None:
        self.engine = _engine_for(pack)
        self.partitions = partitions
        self.until = until
        self.live = True
        self.left: dict[int, str] = {}
        """Partitions left to pass 2 while reading, with the first reason."""
        self._last_us: int | None = None
        self._kinds: dict[str, int] = {}  # patient -> same-second kind, at the last instant
        self._found: list[Finding] = []
        self._evaluated = [0] * partitions
        self._after_until = [0] * partitions
        self._queue: list[tuple[Event, float, int]] = []
        self._held: set[str] = set()

    def add(self, event: Event, spooled: Spooled) -> None:
        """Queue one spooled event for evaluation, unless its partition is left to pass 2."""
        part, ts, ts_us, kind = spooled
        if not self.live or part in self.left:
            return
        if self.until is not None and ts > self.until:
            self._after_until[part] += 1
            return
        last = self._last_us
        patient = event.patient_id
        if last is None or ts_us > last:
            self._last_us = ts_us
            self._kinds = {patient: kind}
        elif ts_us < last:
            self._leave(part, "an event earlier than one already evaluated")
            return
        else:
            before = self._kinds.get(patient)
            if before is not None and kind < before:
                self._leave(part, "a same-second event listed after a later kind")
                return
            self._kinds[patient] = kind
        held = self._held
        if patient not in held:
            if len(held) >= IN_ORDER_PATIENTS:
                self._leave(part, f"more than {IN_ORDER_PATIENTS:,} patients held")
                return
            held.add(patient)
        self._evaluated[part] += 1
        self._queue.append((event, ts, part))
        if len(self._queue) >= IN_ORDER_BATCH:
            self._flush()

    def _flush(self) -> None:
        """Evaluate the events queued: a run of engine work at a time keeps the engine's
        code and data in the processor's caches (interleaved with reading, it ran 20 %
        slower)."""
        submit = self.engine.submit
        found = self._found
        left = self.left
        for event, ts, part in self._queue:
            if part not in left:
                found.extend(submit(event, at=ts))
        self._queue.clear()

    def _leave(self, part: int, why: str) -> None:
        """Leave partition ``part`` to pass 2, forgetting its patients here."""
        self.left[part] = why
        if len(self.left) >= self.partitions:
            self.live = False
            self._found = []
            self._queue.clear()
            self._held.clear()
            self.engine.reset()
            return
        mine = [p for p in self._held if partition_of(p, self.partitions) == part]
        for pid in mine:
            self._held.discard(pid)
            self.engine.drop_patient(pid)

    def results(
        self, verdicts: Verdicts, counts: list[int], patients: Set[str], end: float | None
    ) -> tuple[list[PartitionResult], set[int]]:
        """The partitions this pass decided, and those pass 2 must evaluate from their spool."""
        spooled = {i for i, n in enumerate(counts) if n}
        if not self.live:
            return [], spooled
        redo = {i for i in spooled if len(verdicts.dropped[i]) or len(verdicts.rejected[i])}
        redo.update(i for i in self.left if i in spooled)
        self._flush()
        found = self._found
        if end is not None:
            found.extend(self.engine.advance(end))
        results = {
            i: PartitionResult(
                i,
                "main",
                ReplayStats(evaluated=self._evaluated[i], after_until=self._after_until[i]),
            )
            for i in spooled - redo
        }
        for pid in patients:
            result = results.get(partition_of(pid, self.partitions))
            if result is not None:
                result.stats.patients += 1
        for finding in found:
            result = results.get(partition_of(finding.patient_id, self.partitions))
            if result is None:
                continue
            result.findings.append((finding_key(finding, len(result.findings)), finding))
            result.stats.findings += 1
            result.engine_errors += finding.code == ENGINE_ERROR_CODE
        rss = peak_rss_mb()
        for result in results.values():
            result.peak_rss_mb = rss
        self._found = []
        self.engine.reset()
        return [results[i] for i in sorted(results)], redo
