"""Digests of the findings of fixed inputs, to show a change kept behaviour byte for byte.

    .venv/bin/python benchmarks/findings_digest.py [--patients 1000] [--ignore-pack-sha]

Prints one sha256 (first 16 hex digits) per input set: the bundled demo course,
every requirement scenario, and a drill population per edition (seed 2026,
error rate 0.3), generated to a temporary folder by ``pumpguard drill
--generate-only`` and replayed by ``pumpguard replay``. Run it before and after
a refactor (or on two checkouts) and compare the lines. ``--ignore-pack-sha``
drops ``rule_pack.sha256`` first, for changes that touch pack files without
changing what they decide.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from pumpguard.adapters.jsonl import unchained

ROOT = Path(__file__).resolve().parents[1]
PUMPGUARD = [sys.executable, "-m", "pumpguard"]


def _replay(path: Path, edition: str, ignore_pack_sha: bool) -> bytes:
    out = subprocess.run(
        [*PUMPGUARD, "replay", str(path), "--edition", edition],
        capture_output=True,
        check=False,
    ).stdout
    # the hash chain's fields (seq, prev_sha256) are dropped: digests compare findings as before
    out = "".join(unchained(x) + "\n" for x in out.decode("utf-8").splitlines()).encode("utf-8")
    if not ignore_pack_sha:
        return out
    lines = []
    for line in out.splitlines():
        finding = json.loads(line)
        finding["rule_pack"].pop("sha256", None)
        lines.append(json.dumps(finding, sort_keys=True).encode())
    return b"\n".join(lines)


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--ignore-pack-sha", action="store_true")
    args = ap.parse_args()
    ign = args.ignore_pack_sha
    print("demo      ", _digest([_replay(ROOT / "app/data/demo_course.jsonl", "seed", ign)]))
    scenarios = ROOT / "tests/scenarios"
    expected = yaml.safe_load((scenarios / "expected.yaml").read_text())
    parts = [
        _replay(scenarios / f"{n}.jsonl", spec["edition"], ign)
        for n, spec in sorted(expected.items())
    ]
    print("scenarios ", _digest(parts), f"({len(parts)} files)")
    with tempfile.TemporaryDirectory(prefix="pumpguard-digest-") as tmp:
        for edition in ("seed", "label-2024"):
            stream = Path(tmp) / f"population-{edition}.jsonl"
            subprocess.run(
                [
                    *PUMPGUARD,
                    "drill",
                    "--patients",
                    str(args.patients),
                    "--error-rate",
                    "0.3",
                    "--seed",
                    "2026",
                    "--edition",
                    edition,
                    "--out",
                    str(stream),
                    "--generate-only",
                ],
                capture_output=True,
                check=True,
            )
            print(
                f"{edition:<10}",
                _digest([_replay(stream, edition, ign)]),
                f"({args.patients} patients)",
            )


if __name__ == "__main__":
    main()
