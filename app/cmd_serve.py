"""``pumpguard serve``: the engine as pump middleware (MLLP and HTTP in, journal, alerts out)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "serve",
        help="run as middleware: MLLP and HTTP in, a crash-safe journal, findings to sinks",
        description=(
            "Serve until SIGTERM. With no arguments: MLLP on 127.0.0.1:2575, HTTP on "
            "127.0.0.1:8080, journal ./pumpguard-journal.sqlite, findings to "
            "./pumpguard-findings.jsonl. Flags override the --config file."
        ),
    )
    sp.add_argument("--config", type=Path, help="SERVE.yaml (see service/serve.example.yaml)")
    sp.add_argument("--journal", type=Path, help="journal file (SQLite)")
    sp.add_argument("--mllp", metavar="HOST:PORT", help="MLLP listener address")
    sp.add_argument("--http", metavar="HOST:PORT", help="HTTP listener address")
    sp.add_argument("--no-mllp", action="store_true", help="do not listen for MLLP")
    sp.add_argument("--no-http", action="store_true", help="do not serve HTTP")
    sp.add_argument("--site", type=Path, help="site parameter file")
    sp.add_argument("--edition", help="label edition: seed (default) or label-2024")
    sp.add_argument("--pack", type=Path, help="rule pack directory (default: bundled)")
    sp.add_argument("--adapter-config", type=Path, help="adapter configuration (pump bindings)")
    sp.add_argument("--findings", type=Path, help="JSONL findings sink path (replaces sinks)")
    sp.add_argument(
        "--clock",
        choices=("wall", "events"),
        help="wall (default) or events: time follows the newest event (backfills, feed tests)",
    )


def run(args: argparse.Namespace) -> int:
    from pumpguard.service.app import run_service
    from pumpguard.service.config import (
        ConfigError,
        SinkSpec,
        load_serve_config,
        parse_hostport,
    )

    try:
        overrides: dict[str, Any] = {
            "journal": args.journal,
            "site": args.site,
            "edition": args.edition,
            "pack": args.pack,
            "adapter_config": args.adapter_config,
            "clock": args.clock,
            "mllp": parse_hostport(args.mllp) if args.mllp else None,
            "http": parse_hostport(args.http) if args.http else None,
        }
        if args.findings is not None:
            overrides["sinks"] = [SinkSpec(name="findings", type="jsonl", path=args.findings)]
        config = load_serve_config(args.config, overrides)
        if args.no_mllp:
            config = config.model_copy(update={"mllp": None})
        if args.no_http:
            config = config.model_copy(update={"http": None})
        return asyncio.run(run_service(config))
    except ConfigError as exc:
        print(f"pumpguard serve: {exc}")
        return 2
