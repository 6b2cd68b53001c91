"""``pumpguard journal stats|export|remap``: inspect the service's journal from outside.

Wiring only: the journal is :mod:`pumpguard.service.journal`, the HL7 mapping
:class:`pumpguard.adapters.hl7v2.Hl7Reader`. ``export`` writes the engine's input
events as canonical JSONL (what ``pumpguard replay`` audits); ``remap`` maps rejected
HL7 messages again with the current adapter configuration (a pump bound since) and
appends what they became. Run ``remap`` with the service stopped: a running service
only sees inputs it journaled itself, and picks these up when it next recovers.

Exit status: 0 done; 2 usage error, or a file that is not a journal; 3 (remap) some
rejected HL7 messages are still rejected.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pumpguard import pipeline
from pumpguard.adapters.base import Reject, fate_of
from pumpguard.adapters.common import canonical_json
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2 import Hl7Reader
from pumpguard.engine.events import Event
from pumpguard.engine.findings import format_ts
from pumpguard.service.journal import Journal, JournalError, JournalStats

__all__ = ["COMMANDS", "add_parser", "export_events", "map_hl7", "run"]

COMMANDS = ("journal",)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STILL_REJECTED = 3

_OUTCOME = {"event": "accepted", "warning": "warned", "reject": "rejected"}


def add_parser(sub: Any) -> None:
    jp = sub.add_parser(
        "journal",
        help="inspect the service's journal, export its events, re-map rejected messages",
    )
    jsub = jp.add_subparsers(dest="journal_command", required=True, parser_class=type(jp))
    sp = jsub.add_parser("stats", help="what the journal holds")
    sp.add_argument("--journal", type=Path, required=True, metavar="PATH")
    sp.add_argument("--json", action="store_true", help="JSON instead of a table")
    ep = jsub.add_parser("export", help="the engine's input events as canonical JSONL")
    ep.add_argument("--journal", type=Path, required=True, metavar="PATH")
    ep.add_argument("-o", "--out", type=Path, help="JSONL file (default: standard output)")
    ep.add_argument("--after", type=int, default=0, metavar="POSITION", help="inputs after this")
    rp = jsub.add_parser("remap", help="map rejected HL7 messages again with the current config")
    rp.add_argument("--journal", type=Path, required=True, metavar="PATH")
    rp.add_argument(
        "--config",
        "--adapter-config",
        dest="config",
        type=Path,
        help="adapter configuration (YAML), e.g. with the pump bindings now known",
    )
    rp.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    rp.add_argument("--json", action="store_true", help="the summary as JSON")


def run(args: argparse.Namespace) -> int:
    path: Path = args.journal
    if not path.is_file():
        sys.stderr.write(f"pumpguard journal: no journal at {path}\n")
        return EXIT_USAGE
    try:
        with Journal(path) as journal:
            if args.journal_command == "stats":
                return _stats(journal, as_json=args.json)
            if args.journal_command == "export":
                return _export(journal, args.out, args.after)
            return _remap(journal, pipeline.load_config(args.config), args)
    except JournalError as exc:
        sys.stderr.write(f"pumpguard journal: {exc}\n")
        return EXIT_USAGE


# -- stats -----------------------------------------------------------------------


def _stats(journal: Journal, *, as_json: bool) -> int:
    s = journal.stats()
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(s), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(stats_table(s))
    return EXIT_OK


def stats_table(s: JournalStats) -> str:
    """The stats as a two-column table a person reads at a glance."""

    def when(t: float | None) -> str:
        return format_ts(t) if t is not None else "-"

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "-"

    rows = [
        ("journal", f"{s.path} (schema {s.schema_version}, {s.file_bytes:,} bytes)"),
        ("messages", f"{s.messages:,} ({counts(s.by_outcome)})"),
        ("by channel", counts(s.by_channel)),
        ("remapped", f"{s.remapped:,}"),
        ("resends", f"{s.resends:,} ({s.conflicting_resends:,} with different bytes)"),
        ("received", f"{when(s.first_received_at)} to {when(s.last_received_at)}"),
        ("engine inputs", f"{s.inputs:,} ({s.ticks:,} ticks), last position {s.last_position}"),
        ("events", f"{s.events:,}"),
        ("findings", f"{s.findings:,} ({s.withdrawals:,} withdrawals)"),
        ("snapshots", f"{s.snapshots:,}"),
    ]
    for sink, b in s.backlog.items():
        oldest = f", oldest enqueued {when(b.oldest_enqueued_at)}" if b.pending else ""
        rows.append((f"outbox {sink}", f"{b.pending:,} pending{oldest}"))
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k.ljust(width)}  {v}\n" for k, v in rows)


# -- export ----------------------------------------------------------------------


def export_events(journal: Journal, out: IO[str], after: int = 0) -> int:
    """Every journaled event in engine-input order, one canonical JSON line each."""
    written = 0
    for item in journal.inputs_after(after):
        for event in item.events:
            out.write(canonical_json(event) + "\n")
            written += 1
    return written


def _export(journal: Journal, out_path: Path | None, after: int) -> int:
    with contextlib.ExitStack() as stack:
        target = pipeline.open_output(stack, out_path, "events")
        written = export_events(journal, target.stream if target else sys.stdout, after)
    where = str(out_path) if out_path else "standard output"
    sys.stderr.write(f"pumpguard journal: {written} events written to {where}\n")
    return EXIT_OK


# -- remap -----------------------------------------------------------------------


def map_hl7(
    raw: bytes, config: AdapterConfig | None, label: str
) -> tuple[tuple[Event, ...], str, str | None]:
    """One HL7 message mapped alone, as Hl7Source maps a file: (events, outcome, reason).

    A fresh reader each time: a STOP it would hold for its START is released as a stop.
    """
    records = list(Hl7Reader(config, label).read(raw))
    events = tuple(r for r in records if not isinstance(r, Reject))
    notes = [r for r in records if isinstance(r, Reject)]
    reason = "; ".join(f"{r.level}: {r.reason}" for r in notes) or None
    return events, _OUTCOME[fate_of(records)], reason


def _is_hl7(raw: bytes) -> bool:
    return raw.lstrip(b"\x0b\xef\xbb\xbf \r\n").startswith(b"MSH")


def _remap(journal: Journal, config: AdapterConfig | None, args: argparse.Namespace) -> int:
    now = time.time()  # the CLI's own clock: when the remap was done (not an event time)
    tally = {"examined": 0, "became_events": 0, "events": 0, "warned": 0, "still_rejected": 0}
    tally["not_hl7"] = 0
    rejected = list(journal.messages(outcome="rejected"))
    note: Callable[[str], object] = sys.stderr.write
    for msg in rejected:
        if not _is_hl7(msg.raw):
            tally["not_hl7"] += 1
            continue
        tally["examined"] += 1
        events, outcome, reason = map_hl7(msg.raw, config, f"journal message {msg.seq}")
        if outcome == "rejected":
            tally["still_rejected"] += 1
            continue
        tally["became_events" if events else "warned"] += 1
        tally["events"] += len(events)
        if not args.dry_run:
            done = journal.remap(msg.seq, events, outcome, reason, at=now)
            note(f"message {msg.seq}: {outcome}, {len(events)} event(s) at {done.position}\n")
    if args.json:
        sys.stdout.write(json.dumps({**tally, "dry_run": args.dry_run}, sort_keys=True) + "\n")
    else:
        verb = "would become" if args.dry_run else "became"
        sys.stdout.write(
            f"{tally['examined']} rejected HL7 message(s) mapped again: "
            f"{tally['became_events']} {verb} {tally['events']} event(s), "
            f"{tally['warned']} {verb} warnings only, {tally['still_rejected']} still rejected"
            f"; {tally['not_hl7']} rejected message(s) not HL7, left as they are\n"
        )
    return EXIT_STILL_REJECTED if tally["still_rejected"] else EXIT_OK
