"""Deadlines: facts with a due time, fired in time order as the clock passes them.

"Supervision must be documented within 1 h of the restart" cannot be decided
when the restart arrives, only when the hour is over. durable-rules' own timers
run on the C library's wall clock (``time(NULL)``), which neither replay nor
freezegun can move, so deadlines live here: a heap keyed by (due time,
patient, sequence), SimPy's deterministic tie-break.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Deadline", "DeadlineQueue"]


@dataclass(slots=True)
class Deadline:
    """One open deadline: who, what, when, and what to carry into the finding."""

    due: float
    patient_id: str
    name: str
    seq: int
    opened_by: str
    carry: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()
    cancelled: bool = False
    before_events: bool = False


def _by_seq(d: Deadline) -> int:
    return d.seq


def _by_due(d: Deadline) -> tuple[float, int]:
    return (d.due, d.seq)


class DeadlineQueue:
    """Open deadlines, at most one per (patient, name); reopening replaces."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str, int, Deadline]] = []
        self._open: dict[str, dict[str, Deadline]] = {}
        """Open deadlines by patient, then name: a patient's are found without a scan
        (the live core exports a patient's session at every checkpoint)."""
        self._count = 0
        self._seq = 0

    def __len__(self) -> int:
        return self._count

    def open(
        self,
        patient_id: str,
        name: str,
        due: float,
        *,
        opened_by: str,
        carry: dict[str, Any],
        evidence: tuple[str, ...],
        before_events: bool = False,
    ) -> Deadline:
        self.close(patient_id, name)  # reopening replaces
        self._seq += 1
        seq = self._seq
        d = Deadline(due, patient_id, name, seq, opened_by, carry, evidence, False, before_events)
        self._open.setdefault(patient_id, {})[name] = d
        self._count += 1
        heapq.heappush(self._heap, (due, patient_id, seq, d))
        return d

    def close(self, patient_id: str, name: str) -> bool:
        """Cancel an open deadline; False if there was none."""
        mine = self._open.get(patient_id)
        d = mine.get(name) if mine is not None else None
        if d is None:
            return False
        self._take(d)
        d.cancelled = True
        return True

    def clear(self) -> None:
        """Forget every deadline (an engine restoring a snapshot)."""
        self._heap.clear()
        self._open.clear()
        self._count = 0

    def of_patient(self, patient_id: str) -> list[Deadline]:
        """One patient's open deadlines, in the order they were opened."""
        return sorted(self._open.get(patient_id, {}).values(), key=_by_seq)

    def drop_patient(self, patient_id: str) -> None:
        """Cancel every open deadline of one patient (its history is being replaced)."""
        for d in self._open.pop(patient_id, {}).values():
            d.cancelled = True
            self._count -= 1

    def adopt(self, deadlines: list[Deadline]) -> None:
        """Open copies of deadlines taken from another queue, keeping their relative order."""
        for d in sorted(deadlines, key=_by_seq):
            self.open(
                d.patient_id,
                d.name,
                d.due,
                opened_by=d.opened_by,
                carry=dict(d.carry),
                evidence=d.evidence,
                before_events=d.before_events,
            )

    def next_due(self) -> float | None:
        """When the next live deadline falls due (a live scheduler sleeps until then)."""
        while self._heap and self._heap[0][3].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def due_by(self, until: float) -> bool:
        """Whether a deadline may be due by ``until`` (so :meth:`pop_due` has work): one
        comparison for the common event that passes none."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= until

    def _take(self, d: Deadline) -> None:
        """Take an open deadline out of its patient's index."""
        mine = self._open[d.patient_id]
        del mine[d.name]
        if not mine:
            del self._open[d.patient_id]
        self._count -= 1

    def pop_due_of(self, patient_id: str, until: float) -> Deadline | None:
        """The earliest of one patient's deadlines due before ``until`` (or at it, when it
        comes before the events of that instant), taken out of the queue; None if none.

        For a live feed whose patients' clocks differ: a deadline opened already overdue
        (the engine's time was ahead, from other patients) must still fire before its own
        patient's next event, as it would in that patient's time-ordered replay.
        """
        mine = self._open.get(patient_id)
        if not mine:
            return None
        due = [d for d in mine.values() if d.due < until or (d.due == until and d.before_events)]
        if not due:
            return None
        d = min(due, key=_by_due)
        self._take(d)
        d.cancelled = True  # out of the queue: its heap entry is skipped
        return d

    def pop_due(self, until: float, *, inclusive: bool) -> Iterator[Deadline]:
        """Deadlines due before ``until`` (or at it, if inclusive), earliest first.

        A deadline marked ``before_events`` that falls due exactly at ``until``
        fires even when not inclusive: it comes before the events of that instant.
        """
        heap = self._heap
        held: list[tuple[float, str, int, Deadline]] = []
        while heap:
            due, _, _, d = heap[0]
            if due > until:
                break
            if due == until and not inclusive and not d.before_events:
                held.append(heapq.heappop(heap))
                continue
            heapq.heappop(heap)
            if d.cancelled:
                continue
            self._take(d)
            yield d
        for item in held:
            heapq.heappush(heap, item)
