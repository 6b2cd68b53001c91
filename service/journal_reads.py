"""The journal's reads: plain queries on a reader connection, rows turned into records."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pumpguard.engine.events import Event, event_adapter
from pumpguard.engine.findings import Finding, Severity, Withdrawal
from pumpguard.service.journal_records import (
    JournalInput,
    JournalStats,
    MessageFate,
    OutboxItem,
    SinkBacklog,
    StoredFinding,
    StoredMessage,
    StoredWithdrawal,
)

__all__ = [
    "MESSAGE_COLUMNS",
    "backlog",
    "findings",
    "iter_inputs_after",
    "iter_messages",
    "latest_snapshot",
    "message_from_row",
    "message_history",
    "outbox_due",
    "patient_events",
    "stats",
    "withdrawals",
]

MESSAGE_COLUMNS = (
    "seq, channel, peer, raw, received_at, dedupe_key, content_sha256, outcome, reason,"
    " (SELECT max(i.position) FROM inputs i WHERE i.message_seq = messages.seq),"
    " ack, received_outcome, received_reason, remaps"
)
"""A message's position is its newest input's: a remap that made events moves it on."""
_FETCH = 500


def message_from_row(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        seq=row[0],
        channel=row[1],
        peer=row[2],
        raw=bytes(row[3]),
        received_at=row[4],
        dedupe_key=row[5],
        content_sha256=row[6],
        outcome=row[7],
        reason=row[8],
        position=row[9],
        ack=None if row[10] is None else bytes(row[10]),
        received_outcome=row[11],
        received_reason=row[12],
        remaps=row[13],
    )


def parse_stored_event(body: str) -> Event:
    """An event as journaled (``model_dump_json``), validated again on the way back."""
    event: Event = event_adapter.validate_json(body)
    return event


def iter_messages(
    conn: sqlite3.Connection,
    *,
    outcome: str | None,
    channel: str | None,
    after_seq: int,
    limit: int | None,
) -> Iterator[StoredMessage]:
    where: list[str] = ["seq > ?"]
    args: list[Any] = [after_seq]
    if outcome is not None:
        where.append("outcome = ?")
        args.append(outcome)
    if channel is not None:
        where.append("channel = ?")
        args.append(channel)
    sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(where)} ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = conn.execute(sql, args)
    while rows := cur.fetchmany(_FETCH):
        yield from (message_from_row(r) for r in rows)


def message_history(conn: sqlite3.Connection, seq: int) -> list[MessageFate]:
    """As received, then each remap, oldest first (empty for an unknown message)."""
    first = conn.execute(
        "SELECT received_at, received_outcome, received_reason, remaps,"
        " (SELECT min(position) FROM inputs WHERE message_seq = seq) FROM messages WHERE seq = ?",
        (seq,),
    ).fetchone()
    if first is None:
        return []
    # Only a reject (no events, so no position) is ever re-mapped: once a message has
    # remaps, its row's position is a remap's, and as received it had none.
    received_position = first[4] if first[3] == 0 else None
    fates = [MessageFate(first[0], "received", first[1], first[2], received_position)]
    for at, outcome, reason, position in conn.execute(
        "SELECT at, outcome, reason, position FROM remaps WHERE message_seq = ? ORDER BY id",
        (seq,),
    ):
        fates.append(MessageFate(at, "remap", outcome, reason, position))
    return fates


def iter_inputs_after(conn: sqlite3.Connection, position: int) -> Iterator[JournalInput]:
    """Every input after ``position``, in order, each with its events in their order."""
    cur = conn.execute(
        "SELECT i.position, i.kind, i.at, i.message_seq, e.body FROM inputs i"
        " LEFT JOIN events e ON e.position = i.position"
        " WHERE i.position > ? ORDER BY i.position, e.ord",
        (position,),
    )
    current: tuple[int, str, float, int | None] | None = None
    events: list[Event] = []
    while rows := cur.fetchmany(_FETCH):
        for pos, kind, at, seq, body in rows:
            if current is not None and current[0] != pos:
                yield JournalInput(current[0], current[1], current[2], tuple(events), current[3])
                events = []
            current = (pos, kind, at, seq)
            if body is not None:
                events.append(parse_stored_event(body))
    if current is not None:
        yield JournalInput(current[0], current[1], current[2], tuple(events), current[3])


def patient_events(
    conn: sqlite3.Connection, patient_id: str, since_ts: float | None
) -> list[tuple[int, Event]]:
    sql = "SELECT position, body FROM events WHERE patient_id = ?"
    args: list[Any] = [patient_id]
    if since_ts is not None:
        sql += " AND ts >= ?"
        args.append(since_ts)
    rows = conn.execute(sql + " ORDER BY position, ord", args).fetchall()
    return [(pos, parse_stored_event(body)) for pos, body in rows]


def findings(
    conn: sqlite3.Connection,
    *,
    patient_id: str | None,
    severity: str | None,
    min_severity: str | None,
    since: float | None,
    limit: int,
) -> list[StoredFinding]:
    where: list[str] = ["f.kind = 'finding'"]
    args: list[Any] = []
    if patient_id is not None:
        where.append("f.patient_id = ?")
        args.append(patient_id)
    if severity is not None:
        where.append("f.severity = ?")
        args.append(Severity(severity).value)
    if min_severity is not None:
        where.append("f.severity_rank >= ?")
        args.append(Severity(min_severity).rank)
    if since is not None:
        where.append("f.ts >= ?")
        args.append(since)
    rows = conn.execute(
        "SELECT f.body, f.position, f.recorded_at,"
        " (SELECT w.output_id FROM outputs w WHERE w.kind = 'withdrawal'"
        "  AND w.withdraws = f.output_id ORDER BY w.id LIMIT 1)"
        f" FROM outputs f WHERE {' AND '.join(where)} ORDER BY f.ts, f.id LIMIT ?",
        [*args, int(limit)],
    ).fetchall()
    return [
        StoredFinding(Finding.model_validate_json(body), pos, at, by is not None, by)
        for body, pos, at, by in rows
    ]


def withdrawals(
    conn: sqlite3.Connection, *, patient_id: str | None, since: float | None, limit: int
) -> list[StoredWithdrawal]:
    where: list[str] = ["kind = 'withdrawal'"]
    args: list[Any] = []
    if patient_id is not None:
        where.append("patient_id = ?")
        args.append(patient_id)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    rows = conn.execute(
        f"SELECT body, position, recorded_at FROM outputs WHERE {' AND '.join(where)}"
        " ORDER BY ts, id LIMIT ?",
        [*args, int(limit)],
    ).fetchall()
    return [StoredWithdrawal(Withdrawal.model_validate_json(b), p, a) for b, p, a in rows]


def outbox_due(conn: sqlite3.Connection, sink: str, now: float, limit: int) -> list[OutboxItem]:
    """Undelivered items whose time has come, in the order they were enqueued."""
    rows = conn.execute(
        "SELECT o.id, o.sink, p.kind, p.output_id, p.body, o.attempts, o.next_at,"
        " o.enqueued_at, o.last_error FROM outbox o JOIN outputs p ON p.id = o.output"
        " WHERE o.sink = ? AND o.delivered_at IS NULL AND o.next_at <= ? ORDER BY o.id LIMIT ?",
        (sink, now, int(limit)),
    ).fetchall()
    return [OutboxItem(*row) for row in rows]


def backlog(conn: sqlite3.Connection, now: float | None) -> dict[str, SinkBacklog]:
    out: dict[str, SinkBacklog] = {}
    for sink, pending, oldest in conn.execute(
        "SELECT sink, sum(delivered_at IS NULL), min(CASE WHEN delivered_at IS NULL"
        " THEN enqueued_at END) FROM outbox GROUP BY sink ORDER BY sink"
    ):
        age = None if oldest is None or now is None else max(0.0, now - oldest)
        out[sink] = SinkBacklog(sink, int(pending), oldest, age)
    return out


def latest_snapshot(
    conn: sqlite3.Connection, pack_sha256: str, code_version: str
) -> tuple[int, bytes] | None:
    """The newest intact snapshot made with this pack and this code, if any."""
    for position, blob, digest in conn.execute(
        "SELECT position, blob, blob_sha256 FROM snapshots WHERE pack_sha256 = ?"
        " AND code_version = ? ORDER BY position DESC, id DESC",
        (pack_sha256, code_version),
    ):
        data = bytes(blob)
        if hashlib.sha256(data).hexdigest() == digest:
            return int(position), data
    return None


def latest_time(conn: sqlite3.Connection) -> float | None:
    """The newest event time or tick in the journal (where an event clock resumes)."""
    row = conn.execute(
        "SELECT max(t) FROM (SELECT max(ts) AS t FROM events"
        " UNION ALL SELECT max(at) FROM inputs WHERE kind = 'tick')"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def stats(conn: sqlite3.Connection, path: Path) -> JournalStats:
    """Every count in one read transaction, so they agree with each other."""
    conn.execute("BEGIN")
    try:
        q = _scalar_query(conn)
        by_outcome = dict(conn.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))
        by_channel = dict(conn.execute("SELECT channel, count(*) FROM messages GROUP BY channel"))
        first, last = conn.execute(
            "SELECT min(received_at), max(received_at) FROM messages"
        ).fetchone()
        result = JournalStats(
            path=str(path),
            schema_version=int(q("PRAGMA user_version")),
            file_bytes=sum(
                p.stat().st_size
                for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                if p.exists()
            ),
            messages=int(q("SELECT count(*) FROM messages")),
            by_outcome={k: int(v) for k, v in sorted(by_outcome.items())},
            by_channel={k: int(v) for k, v in sorted(by_channel.items())},
            remapped=int(q("SELECT count(*) FROM messages WHERE remaps > 0")),
            resends=int(q("SELECT count(*) FROM resends")),
            conflicting_resends=int(q("SELECT count(*) FROM resends WHERE raw IS NOT NULL")),
            inputs=int(q("SELECT count(*) FROM inputs")),
            ticks=int(q("SELECT count(*) FROM inputs WHERE kind = 'tick'")),
            events=int(q("SELECT count(*) FROM events")),
            last_position=q("SELECT max(position) FROM inputs"),
            findings=int(q("SELECT count(*) FROM outputs WHERE kind = 'finding'")),
            withdrawals=int(q("SELECT count(*) FROM outputs WHERE kind = 'withdrawal'")),
            backlog=backlog(conn, None),
            snapshots=int(q("SELECT count(*) FROM snapshots")),
            first_received_at=first,
            last_received_at=last,
        )
    finally:
        conn.execute("COMMIT")
    return result


def _scalar_query(conn: sqlite3.Connection) -> Callable[[str], Any]:
    def q(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    return q
