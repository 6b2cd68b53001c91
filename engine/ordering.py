"""Which of one patient's events at the same second is applied first.

Findings must not depend on the order in which a same-second pair was listed,
in one file or across files (spec/blincyto.md, "Same second, any order").
Documentation made in the same second as a pump act counts as made before the
act: the premedication, the supervision, the admission, the cycle order or the
reaction entry at the second of a start is there for that start. So within a
second, events are applied by kind: the patient's record first, then orders,
the care setting, the pharmacy, medication, nursing, clinical entries, and the
pump's own acts last. Two events of the same kind keep their input order
(two pump acts at one second: a stop then a start is not a start then a stop).
"""

from __future__ import annotations

__all__ = ["KINDS", "same_second_rank"]

KINDS: tuple[str, ...] = (
    "patient.",
    "cycle.",
    "order.",
    "encounter.",
    "bag.",
    "medication.",
    "nursing.",
    "clinical.",
)
"""Documentation kinds (event-type prefixes) in the order they are applied within one second."""

_OTHER = len(KINDS)
_PUMP = _OTHER + 1


def same_second_rank(event_type: str) -> int:
    """The event's place among same-second events of its patient (lower first).

    Pump acts come last of all, after any kind the table does not name.
    """
    if event_type.startswith("pump."):
        return _PUMP
    for rank, prefix in enumerate(KINDS):
        if event_type.startswith(prefix):
            return rank
    return _OTHER
