"""The journal's typed records and its small exception tree.

::

    PumpguardError                (engine.errors)
    └── JournalError              the journal could not store or read something
        ├── JournalClosedError    a write after close, or after the writer thread stopped
        └── JournalFormatError    the file is not a pumpguard journal of this schema version

Kept apart from :mod:`.journal` so the records can be imported (by the MLLP listener,
the HTTP API, delivery) without pulling in the writer thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pumpguard.engine.errors import PumpguardError
from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding, Withdrawal

__all__ = [
    "OUTCOMES",
    "Appended",
    "Inbound",
    "JournalClosedError",
    "JournalError",
    "JournalFormatError",
    "JournalInput",
    "JournalStats",
    "MessageFate",
    "OutboxItem",
    "SinkBacklog",
    "StoredFinding",
    "StoredMessage",
    "StoredWithdrawal",
]

OUTCOMES = ("accepted", "warned", "rejected")
"""What a received message became: events, no event by design (a warning), or a reject."""


class JournalError(PumpguardError):
    """The journal could not store or read something; a waiter sees it instead of a result."""


class JournalClosedError(JournalError):
    """A write after :meth:`Journal.close` (or after the writer thread stopped)."""


class JournalFormatError(JournalError):
    """The file is not a pumpguard journal, or one of a schema version this code cannot read."""


@dataclass(frozen=True)
class Inbound:
    """One received message and what it became."""

    channel: str
    """``"mllp"``, ``"http"``, ``"remap"`` or ``"file"``."""
    peer: str
    """``"127.0.0.1:50512"`` or a file name."""
    raw: bytes
    """Exactly as received (MLLP unframed)."""
    received_at: float
    """Epoch seconds, from the service's (injected) clock."""
    dedupe_key: str | None
    """HL7 ``"MSH-3|MSH-4|MSH-10"``; HTTP ``"event:<event_id>"``; None: never deduplicated."""
    events: tuple[Event, ...]
    outcome: str
    reason: str | None
    """Why rejected, or the warnings, as human text."""
    ack: bytes | None = None
    """The answer sent back, so a resend is answered the same."""
    content_sha256: str | None = None
    """sha256 of ``raw`` (hex); computed when None."""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise JournalError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if self.outcome == "rejected" and self.events:
            raise JournalError("a rejected message carries no events (its fate would be 'events')")
        if self.content_sha256 is None:
            object.__setattr__(self, "content_sha256", hashlib.sha256(self.raw).hexdigest())


@dataclass(frozen=True)
class StoredMessage:
    """A message as the journal keeps it: as received, and what it is now (after remaps)."""

    seq: int
    channel: str
    peer: str
    raw: bytes
    received_at: float
    dedupe_key: str | None
    content_sha256: str
    outcome: str
    """The current outcome (a remap may have turned a reject into events)."""
    reason: str | None
    position: int | None
    """The engine input its (latest) events became, if any."""
    ack: bytes | None
    received_outcome: str
    """The outcome when it was received, kept whatever remaps do later."""
    received_reason: str | None
    remaps: int


@dataclass(frozen=True)
class MessageFate:
    """One step of a message's history: as received, then each remap."""

    at: float
    via: str
    """``"received"`` or ``"remap"``."""
    outcome: str
    reason: str | None
    position: int | None


@dataclass(frozen=True)
class Appended:
    """What :meth:`Journal.append` did with one message."""

    message_seq: int
    position: int | None
    """Its engine-input position (None if it made no events or was a duplicate)."""
    duplicate: bool
    """The dedupe key was seen before: nothing stored; ``original`` is the first one."""
    original: StoredMessage | None
    conflict: bool = False
    """A duplicate whose bytes differ from the original's (kept aside, never lost)."""


@dataclass(frozen=True)
class JournalInput:
    """One entry of the engine's input log, replayed in ``position`` order on recovery."""

    position: int
    kind: str
    """``"events"`` or ``"tick"``."""
    at: float
    """tick: the time deadlines were fired up to; events: when received (or remapped)."""
    events: tuple[Event, ...] = ()
    message_seq: int | None = None


@dataclass(frozen=True)
class OutboxItem:
    """One finding or withdrawal waiting for one sink."""

    item_id: int
    sink: str
    kind: str
    """``"finding"`` or ``"withdrawal"``."""
    output_id: str
    """The ``finding_id`` or ``withdrawal_id``."""
    body: str
    """Its JSON, as ``to_json()`` gave it when journaled."""
    attempts: int
    next_at: float
    enqueued_at: float
    last_error: str | None


@dataclass(frozen=True)
class SinkBacklog:
    """What one sink still has to deliver."""

    sink: str
    pending: int
    oldest_enqueued_at: float | None
    oldest_age_s: float | None = None
    """``now - oldest_enqueued_at`` when :meth:`Journal.backlog` was given ``now``."""


@dataclass(frozen=True)
class StoredFinding:
    """A journaled finding, and whether a later withdrawal ended it."""

    finding: Finding
    position: int
    recorded_at: float
    withdrawn: bool
    withdrawn_by: str | None
    """The ``withdrawal_id`` that withdrew it."""


@dataclass(frozen=True)
class StoredWithdrawal:
    withdrawal: Withdrawal
    position: int
    recorded_at: float


@dataclass(frozen=True)
class JournalStats:
    """Counts for ``pumpguard journal stats`` and the service's metrics."""

    path: str
    schema_version: int
    file_bytes: int
    """The database, its WAL and shared-memory files together."""
    messages: int
    by_outcome: dict[str, int]
    by_channel: dict[str, int]
    remapped: int
    resends: int
    conflicting_resends: int
    inputs: int
    ticks: int
    events: int
    last_position: int | None
    findings: int
    withdrawals: int
    backlog: dict[str, SinkBacklog] = field(default_factory=dict)
    snapshots: int = 0
    first_received_at: float | None = None
    last_received_at: float | None = None
