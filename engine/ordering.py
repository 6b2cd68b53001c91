"""The replay order, defined once: time, patient, kind within a second, input order.

Findings must not depend on the order in which a same-second pair was listed,
in one file or across files (spec/blincyto.md, "Same second, any order").
Documentation made in the same second as a pump act counts as made before the
act: the premedication, the supervision, the admission, the cycle order or the
reaction entry at the second of a start is there for that start. So within a
second, events are applied by kind: the patient's record first, then orders,
the care setting, the pharmacy, medication, nursing, clinical entries, and the
pump's own acts last. Two events of the same kind keep their input order
(two pump acts at one second: a stop then a start is not a start then a stop).

Across patients, events at one instant are taken in ``patient_id`` order, so
the output does not depend on how the input interleaved them. The whole order
is one packed integer (:func:`replay_key`), which both the in-memory sort
(:func:`pumpguard.engine.replay.time_ordered`) and the spooled, partitioned
replay use.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

__all__ = [
    "INDEX_BITS",
    "INDEX_MASK",
    "KINDS",
    "instant_us",
    "instant_us_at",
    "patient_ranks",
    "replay_key",
    "same_second_rank",
]

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TS_BIAS = 1 << 62  # every year from 1 to 9999, in microseconds, packs as a non-negative integer

INDEX_BITS = 32
"""Bits of the input-order field: one sort holds at most 2**32 events."""
INDEX_MASK = (1 << INDEX_BITS) - 1
"""``replay_key(...) & INDEX_MASK`` is the event's index in its sort."""
_PATIENT_BITS = 32
_KIND_BITS = 8


def same_second_rank(event_type: str) -> int:
    """The event's place among same-second events of its patient (lower first).

    Pump acts come last of all, after any kind the table does not name.
    """
    rank = _RANKS.get(event_type)
    if rank is None:
        rank = _RANKS[event_type] = _rank(event_type)
    return rank


_RANKS: dict[str, int] = {}
"""Ranks worked out so far (event types are a closed set: the validated models')."""


def _rank(event_type: str) -> int:
    if event_type.startswith("pump."):
        return _PUMP
    for rank, prefix in enumerate(KINDS):
        if event_type.startswith(prefix):
            return rank
    return _OTHER


def instant_us(ts: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp loses them in far years)."""
    return (ts - _EPOCH) // _MICROSECOND


_FLOAT_EXACT = 2.0**32
"""Within this many seconds of the epoch (1833 to 2106) a float timestamp still
rounds back to the exact microsecond: its two roundings (the division by 10**6
and the multiplication back) err by at most 0.49 µs together."""


def instant_us_at(ts: datetime, seconds: float) -> int:
    """:func:`instant_us` of ``ts``, given ``seconds == ts.timestamp()`` already:
    the float is rounded where that is exact, else the datetime is worked out."""
    if -_FLOAT_EXACT < seconds < _FLOAT_EXACT:
        return round(seconds * 1e6)
    return instant_us(ts)


def patient_ranks(patient_ids: Iterable[str]) -> dict[str, int]:
    """Each patient's place in ``patient_id`` order, the tie-break between patients."""
    return {pid: rank for rank, pid in enumerate(sorted(set(patient_ids)))}


def replay_key(ts_us: int, patient_rank: int, kind: int, index: int) -> int:
    """The replay order of one event as an integer: sorting these sorts the events.

    Fields from most to least significant: the instant, the patient's rank,
    the same-second kind and the input order. One integer per event sorts in
    a fraction of the memory of tuples; ``key & INDEX_MASK`` gives the index back.
    """
    key = ts_us + _TS_BIAS
    key = (key << _PATIENT_BITS) | patient_rank
    key = (key << _KIND_BITS) | kind
    return (key << INDEX_BITS) | index
