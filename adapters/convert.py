"""``pumpguard convert``: inputs in any format → the canonical JSONL the engine would see."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from pumpguard.adapters.base import Reject
from pumpguard.adapters.common import canonical_json
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.detect import open_source

__all__ = ["convert"]


def convert(
    paths: list[Path], out: TextIO, rejects: TextIO, config: AdapterConfig | None = None
) -> tuple[int, int]:
    """Write every event as one JSONL line and every reject as one JSON line.

    Returns (events written, error-level rejects); warnings are written to
    ``rejects`` too but not counted, since they do not fail a run. All inputs
    are opened before anything is written, so an unreadable file raises
    ParseError with nothing half-converted.
    """
    sources = [open_source(Path(p), config) for p in paths]
    written = failed = 0
    for source in sources:
        with source:
            for record in source:
                if isinstance(record, Reject):
                    rejects.write(record.to_json() + "\n")
                    failed += record.level == "error"
                else:
                    out.write(canonical_json(record) + "\n")
                    written += 1
    return written, failed
