"""The journal's SQLite schema (version 1) and how its connections are opened.

Kept in Python rather than a ``.sql`` file so it ships without package data. The
schema version is SQLite's ``user_version``; a file of another version is refused
rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pumpguard.service.journal_records import JournalError, JournalFormatError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "connect_reader", "connect_writer"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x50475244  # "PGRD": marks the file as a pumpguard journal

_DDL = """
CREATE TABLE messages (
    seq              INTEGER PRIMARY KEY,
    channel          TEXT NOT NULL,
    peer             TEXT NOT NULL,
    raw              BLOB NOT NULL,
    received_at      REAL NOT NULL,
    dedupe_key       TEXT UNIQUE,
    content_sha256   TEXT NOT NULL,
    ack              BLOB,
    received_outcome TEXT NOT NULL,
    received_reason  TEXT,
    outcome          TEXT NOT NULL,
    reason           TEXT,
    remaps           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_outcome ON messages (outcome, seq);

-- A message's later fates (its first one is on its row, as received).
CREATE TABLE remaps (
    id          INTEGER PRIMARY KEY,
    message_seq INTEGER NOT NULL REFERENCES messages (seq),
    at          REAL NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    position    INTEGER
);
CREATE INDEX remaps_message ON remaps (message_seq, id);

-- A message whose dedupe key was already journaled is counted, its bytes kept only if they differ.
CREATE TABLE resends (
    id             INTEGER PRIMARY KEY,
    original_seq   INTEGER NOT NULL REFERENCES messages (seq),
    channel        TEXT NOT NULL,
    peer           TEXT NOT NULL,
    received_at    REAL NOT NULL,
    content_sha256 TEXT NOT NULL,
    raw            BLOB
);

-- The engine's input log: replayed in position order on recovery.
CREATE TABLE inputs (
    position    INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('events', 'tick')),
    at          REAL NOT NULL,
    message_seq INTEGER REFERENCES messages (seq)
);
CREATE INDEX inputs_message ON inputs (message_seq, position);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL REFERENCES inputs (position),
    ord        INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    ts         REAL NOT NULL,
    body       TEXT NOT NULL,
    UNIQUE (position, ord)
);
CREATE INDEX events_patient ON events (patient_id, position, ord);
CREATE INDEX events_event_id ON events (event_id);
CREATE INDEX events_ts ON events (ts);

-- Findings and withdrawals, each once (output_id is the finding_id or withdrawal_id).
CREATE TABLE outputs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('finding', 'withdrawal')),
    output_id     TEXT NOT NULL UNIQUE,
    withdraws     TEXT,
    patient_id    TEXT NOT NULL,
    severity      TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    code          TEXT NOT NULL,
    ts            REAL NOT NULL,
    position      INTEGER NOT NULL,
    recorded_at   REAL NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX outputs_patient ON outputs (patient_id, ts);
CREATE INDEX outputs_ts ON outputs (kind, ts);
CREATE INDEX outputs_withdraws ON outputs (withdraws);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    sink         TEXT NOT NULL,
    output       INTEGER NOT NULL REFERENCES outputs (id),
    enqueued_at  REAL NOT NULL,
    next_at      REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    delivered_at REAL,
    UNIQUE (sink, output)
);
CREATE INDEX outbox_due ON outbox (sink, delivered_at, next_at);

CREATE TABLE snapshots (
    id           INTEGER PRIMARY KEY,
    position     INTEGER NOT NULL,
    pack_sha256  TEXT NOT NULL,
    code_version TEXT NOT NULL,
    blob         BLOB NOT NULL,
    blob_sha256  TEXT NOT NULL
);
CREATE INDEX snapshots_key ON snapshots (pack_sha256, code_version, position);
"""


def connect_writer(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """The one write connection: WAL, ``synchronous=FULL``, schema made or checked.

    FULL, not NORMAL: in WAL mode NORMAL does not sync the WAL at each commit, so an
    acknowledged message can be lost to a power cut (6 trials in 8 in the prototype).
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalFormatError(f"journal {path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _create_or_check(conn, path)
    except sqlite3.OperationalError as exc:  # locked, read-only, no such folder...
        conn.close()
        raise JournalError(f"journal {path}: cannot open it for writing ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise JournalFormatError(f"journal {path}: not a readable SQLite file ({exc})") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A read-only connection of its own (readers never share the writer's)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = ON")
    return conn


def _create_or_check(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and app_id == 0 and tables == 0:
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif app_id != APPLICATION_ID:
            raise JournalFormatError(f"{path} is an SQLite file but not a pumpguard journal")
        elif version != SCHEMA_VERSION:
            raise JournalFormatError(
                f"journal {path} has schema version {version}; this pumpguard reads "
                f"version {SCHEMA_VERSION}"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
