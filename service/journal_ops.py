"""The journal's writes: each runs on the writer's connection inside the batch's transaction.

Every function takes the connection first and returns ``(result, new_inputs)``: what
the waiter gets, and the engine inputs the write added (passed to ``on_commit`` once
the batch is durable). None commits: the writer thread commits the whole batch.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping, Sequence

from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding, Withdrawal
from pumpguard.service.journal_reads import MESSAGE_COLUMNS, message_from_row
from pumpguard.service.journal_records import (
    OUTCOMES,
    Appended,
    Inbound,
    JournalError,
    JournalInput,
)

__all__ = [
    "append",
    "mark_delivered",
    "mark_retry",
    "record_outputs",
    "remap",
    "save_snapshot",
    "tick",
]


def append(conn: sqlite3.Connection, inbound: Inbound) -> tuple[Appended, list[JournalInput]]:
    """Store one message (or count it as a resend of the first one with its key).

    The insert itself detects the duplicate (the key is UNIQUE), so a new message,
    the common case, costs no lookup; NULL keys never collide.
    """
    cur = conn.execute(
        "INSERT INTO messages (channel, peer, raw, received_at, dedupe_key, content_sha256, ack,"
        " received_outcome, received_reason, outcome, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
        (
            inbound.channel,
            inbound.peer,
            inbound.raw,
            inbound.received_at,
            inbound.dedupe_key,
            inbound.content_sha256,
            inbound.ack,
            inbound.outcome,
            inbound.reason,
            inbound.outcome,
            inbound.reason,
        ),
    )
    if cur.rowcount == 0:
        return _resend(conn, inbound), []
    seq = _rowid(cur)
    if not inbound.events:
        return Appended(seq, None, False, None), []
    made = _events_input(conn, inbound.events, inbound.received_at, seq)
    return Appended(seq, made.position, False, None), [made]


def _resend(conn: sqlite3.Connection, inbound: Inbound) -> Appended:
    row = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE dedupe_key = ?", (inbound.dedupe_key,)
    ).fetchone()
    if row is None:  # pragma: no cover - the insert just collided with this key
        raise JournalError(f"dedupe key {inbound.dedupe_key!r} collided but is not stored")
    original = message_from_row(row)
    conflict = original.content_sha256 != inbound.content_sha256
    conn.execute(
        "INSERT INTO resends (original_seq, channel, peer, received_at,"
        " content_sha256, raw) VALUES (?, ?, ?, ?, ?, ?)",
        (
            original.seq,
            inbound.channel,
            inbound.peer,
            inbound.received_at,
            inbound.content_sha256,
            inbound.raw if conflict else None,
        ),
    )
    return Appended(original.seq, None, True, original, conflict)


def tick(conn: sqlite3.Connection, at: float) -> tuple[JournalInput, list[JournalInput]]:
    """A tick: the engine fired its deadlines up to ``at``."""
    cur = conn.execute("INSERT INTO inputs (kind, at) VALUES ('tick', ?)", (at,))
    made = JournalInput(_rowid(cur), "tick", at)
    return made, [made]


def remap(
    conn: sqlite3.Connection,
    seq: int,
    events: Sequence[Event],
    outcome: str,
    reason: str | None,
    at: float | None,
) -> tuple[Appended, list[JournalInput]]:
    """A rejected message mapped again: new events go at the end of the log; history kept.

    ``at`` None: the time of the log's last input (so the log's times never go back).
    """
    row = conn.execute("SELECT outcome, received_at FROM messages WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        raise JournalError(f"no message {seq} in the journal")
    if at is None:
        last = conn.execute("SELECT at FROM inputs ORDER BY position DESC LIMIT 1").fetchone()
        at = max(float(row[1]), float(last[0])) if last else float(row[1])
    if row[0] != "rejected":
        raise JournalError(f"message {seq} is {row[0]}, not rejected: only rejects are re-mapped")
    if outcome not in OUTCOMES:
        raise JournalError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if outcome == "rejected" and events:
        raise JournalError("a rejected message carries no events")
    made = _events_input(conn, tuple(events), at, seq) if events else None
    position = made.position if made else None
    conn.execute(
        "INSERT INTO remaps (message_seq, at, outcome, reason, position) VALUES (?, ?, ?, ?, ?)",
        (seq, at, outcome, reason, position),
    )
    conn.execute(
        "UPDATE messages SET outcome = ?, reason = ?, remaps = remaps + 1 WHERE seq = ?",
        (outcome, reason, seq),
    )
    return Appended(seq, position, False, None), [made] if made else []


def record_outputs(
    conn: sqlite3.Connection,
    outputs: Sequence[Finding | Withdrawal],
    sinks: Sequence[str],
    position: int,
    hold: Mapping[str, float] | None = None,
) -> tuple[list[str], list[JournalInput]]:
    """Journal each output once (by its id); enqueue each new one for every sink.

    ``hold`` maps finding codes to a grace period: such a finding is first due that
    long after it was raised, and a withdrawal that comes while it still waits (never
    attempted) ends it in silence: neither it nor the withdrawal reaches that sink.
    """
    hold = hold or {}
    row = conn.execute("SELECT at FROM inputs WHERE position = ?", (position,)).fetchone()
    if row is None:
        raise JournalError(f"no engine input at position {position}: outputs not recorded")
    recorded_at = float(row[0])
    new: list[str] = []
    for output in outputs:
        if isinstance(output, Finding):
            kind, output_id, withdraws = "finding", output.finding_id, None
        else:
            kind, output_id, withdraws = "withdrawal", output.withdrawal_id, output.withdraws
        cur = conn.execute(
            "INSERT INTO outputs (kind, output_id, withdraws, patient_id, severity,"
            " severity_rank, code, ts, position, recorded_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (output_id) DO NOTHING",
            (
                kind,
                output_id,
                withdraws,
                output.patient_id,
                output.severity.value,
                output.severity.rank,
                output.code,
                output.ts.timestamp(),
                position,
                recorded_at,
                output.to_json(),
            ),
        )
        if cur.rowcount == 0:
            continue  # journaled before (a replay after restart makes the same ids)
        out_row = _rowid(cur)
        targets = list(dict.fromkeys(sinks))
        due = recorded_at
        if withdraws is not None:
            targets = _unheld(conn, withdraws, targets, recorded_at)
        else:
            due += hold.get(output.code, 0.0)
        conn.executemany(
            "INSERT INTO outbox (sink, output, enqueued_at, next_at) VALUES (?, ?, ?, ?)",
            [(sink, out_row, recorded_at, due) for sink in targets],
        )
        new.append(output_id)
    return new, []


def _unheld(conn: sqlite3.Connection, finding_id: str, sinks: list[str], at: float) -> list[str]:
    """The sinks a withdrawal must reach: all but those still holding the finding unsent."""
    held = {
        str(row[0])
        for row in conn.execute(
            "SELECT o.sink FROM outbox o JOIN outputs f ON f.id = o.output"
            " WHERE f.output_id = ? AND o.delivered_at IS NULL AND o.attempts = 0"
            " AND o.next_at > ?",
            (finding_id, at),
        )
    }
    if held:
        conn.executemany(
            "UPDATE outbox SET delivered_at = ?, last_error = 'withdrawn while held'"
            " WHERE sink = ? AND delivered_at IS NULL AND output ="
            " (SELECT id FROM outputs WHERE output_id = ?)",
            [(at, sink, finding_id) for sink in held],
        )
    return [s for s in sinks if s not in held]


def mark_delivered(
    conn: sqlite3.Connection, sink: str, item_ids: Sequence[int], at: float
) -> tuple[None, list[JournalInput]]:
    conn.executemany(
        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1"
        " WHERE id = ? AND sink = ? AND delivered_at IS NULL",
        [(at, item_id, sink) for item_id in item_ids],
    )
    return None, []


def mark_retry(
    conn: sqlite3.Connection, sink: str, item_id: int, next_at: float, error: str
) -> tuple[None, list[JournalInput]]:
    conn.execute(
        "UPDATE outbox SET next_at = ?, last_error = ?, attempts = attempts + 1"
        " WHERE id = ? AND sink = ? AND delivered_at IS NULL",
        (next_at, error, item_id, sink),
    )
    return None, []


def save_snapshot(
    conn: sqlite3.Connection,
    position: int,
    pack_sha256: str,
    code_version: str,
    blob: bytes,
    keep: int,
) -> tuple[None, list[JournalInput]]:
    """Store a snapshot and prune all but the newest ``keep`` of its kind (pack and code)."""
    conn.execute(
        "INSERT INTO snapshots (position, pack_sha256, code_version, blob, blob_sha256)"
        " VALUES (?, ?, ?, ?, ?)",
        (position, pack_sha256, code_version, blob, hashlib.sha256(blob).hexdigest()),
    )
    conn.execute(
        "DELETE FROM snapshots WHERE pack_sha256 = ? AND code_version = ? AND id NOT IN"
        " (SELECT id FROM snapshots WHERE pack_sha256 = ? AND code_version = ?"
        " ORDER BY id DESC LIMIT ?)",
        (pack_sha256, code_version, pack_sha256, code_version, max(1, keep)),
    )
    return None, []


def _events_input(
    conn: sqlite3.Connection, events: tuple[Event, ...], at: float, seq: int
) -> JournalInput:
    cur = conn.execute(
        "INSERT INTO inputs (kind, at, message_seq) VALUES ('events', ?, ?)", (at, seq)
    )
    position = _rowid(cur)
    rows = [
        (position, i, e.event_id, e.patient_id, e.ts.timestamp(), e.model_dump_json())
        for i, e in enumerate(events)
    ]
    insert = (
        "INSERT INTO events (position, ord, event_id, patient_id, ts, body)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    if len(rows) == 1:
        conn.execute(insert, rows[0])  # most messages make one event; execute is the cheaper call
    else:
        conn.executemany(insert, rows)
    return JournalInput(position, "events", at, events, seq)


def _rowid(cur: sqlite3.Cursor) -> int:
    rowid = cur.lastrowid
    if rowid is None:  # pragma: no cover - an INSERT always sets it
        raise JournalError("SQLite gave no row id for an insert")
    return rowid
