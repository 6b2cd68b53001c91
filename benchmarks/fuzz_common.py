"""What the adapter fuzz targets share: the accounting check and a time-bounded run.

Each ``benchmarks/fuzz_<format>.py`` feeds one source the bytes atheris (libFuzzer
for Python) makes, starting from valid inputs and the damaged-input corpus. A
finding is any exception the source raises, an unbalanced tally, a reject
without a position, or a reason that quotes too much. Not run in CI or
``make test``: it needs ``pip install atheris`` and minutes, not seconds.

    .venv/bin/python benchmarks/fuzz_jsonl.py --seconds 180
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from pumpguard.adapters.base import EventSource, Reject
from pumpguard.adapters.common import canonical_json
from pumpguard.engine.events import Event

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "fixtures" / "bad"


def check(source: EventSource) -> None:
    """Raise AssertionError when the source broke its promise for this input."""
    records = list(source)
    tally = source.tally
    assert tally.records == tally.events + tally.warned + tally.rejected, tally
    assert sum(isinstance(r, Event) for r in records) >= tally.events, tally
    for r in records:
        if isinstance(r, Reject):
            assert r.position, r
            assert len(r.reason) < 1000, r.reason[:300]
            r.to_json().encode("utf-8")  # a rejects file can hold it
        else:
            canonical_json(r).encode("utf-8")  # the replay's spool and convert can hold it


def seeds_from(folder: str, patterns: Iterable[str], limit: int = 64 * 1024) -> list[bytes]:
    """The corpus files of one format (cut to ``limit`` bytes) as starting points."""
    found = []
    for pattern in patterns:
        for path in sorted((BAD / folder).glob(pattern)):
            found.append(path.read_bytes()[:limit])
    return found


def run(target: Callable[[bytes], None], seeds: list[bytes]) -> None:
    """Parse ``--seconds``, write the seeds to a temporary corpus and fuzz until time is up."""
    import atheris

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="total fuzzing time")
    parser.add_argument("--max-len", type=int, default=16384, help="largest input tried")
    args, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="pumpguard-fuzz-") as corpus:
        for i, seed in enumerate(seeds):
            (Path(corpus) / f"seed-{i:03d}").write_bytes(seed)
        argv = [
            sys.argv[0],
            f"-max_total_time={args.seconds}",
            f"-max_len={args.max_len}",
            "-timeout=20",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
            *rest,
            corpus,
        ]
        atheris.Setup(argv, target)
        atheris.Fuzz()
