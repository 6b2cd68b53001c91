"""``pumpguard convert``: inputs in any format → the canonical JSONL the engine would see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from pumpguard.adapters.base import STOPPED, Reject, drain
from pumpguard.adapters.common import canonical_json
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.detect import open_source

__all__ = ["convert"]


def convert(
    paths: Sequence[Path],
    out: TextIO,
    rejects: TextIO,
    config: AdapterConfig | None = None,
    *,
    labels: Sequence[str] | None = None,
    summary: list[dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Write every event as one JSONL line and every reject as one JSON line.

    Returns (events written, error-level rejects); warnings are written to
    ``rejects`` too but not counted, since they do not fail a run. All inputs
    are opened before anything is written, so an input whose format cannot be
    told raises ParseError with nothing half-converted; a source that fails
    while being read costs the rest of that source only (a reject says where).
    ``summary``, when given, receives each input's tally; ``progress`` is told
    the events written so far every few thousand (a progress display).
    """
    names = labels or [str(p) for p in paths]
    sources = [
        open_source(Path(p), config, label=name) for p, name in zip(paths, names, strict=True)
    ]
    written = failed = 0
    for source, name in zip(sources, names, strict=True):
        stopped: str | None = None
        for record, position in drain(source):
            if isinstance(record, Reject):
                rejects.write(record.to_json() + "\n")
                failed += record.level == "error"
                if record.reason.startswith(STOPPED):
                    stopped = position
            else:
                out.write(canonical_json(record) + "\n")
                written += 1
                if progress is not None and not written % 5000:
                    progress(written)
        if summary is not None:
            tally = getattr(source, "tally", None)
            entry: dict[str, Any] = {"file": name, "format": source.name}
            entry.update(asdict(tally) if tally is not None else dict.fromkeys(_TALLY_KEYS))
            if stopped is not None:
                entry["stopped_at"] = stopped
            summary.append(entry)
    if progress is not None:
        progress(written)
    return written, failed


_TALLY_KEYS = ("records", "events", "warned", "rejected")
