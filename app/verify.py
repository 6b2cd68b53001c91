"""``pumpguard verify``: is a findings file the one the engine wrote?

Each line carries its number (``seq``) and the hash of the line before it
(``prev_sha256``); the seal beside the file carries the count, the last hash
and the rule pack. Walking the lines once tells an untouched file from one
with a changed, deleted, inserted or reordered line or a cut-off end, and
names the first line where it happened: the committee can then ask for the
original before trusting the report.

Exit status: 0 the file, the seal (and the pack, if given) agree; 1 they do
not; 2 usage (no such file).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpguard.adapters.jsonl import GENESIS, SEAL_FORMAT, SEAL_SUFFIX, line_sha256

__all__ = ["COMMANDS", "Verdict", "add_parser", "run", "verify_findings"]

COMMANDS = ("verify",)
EXIT_OK = 0
EXIT_ALTERED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class _Line:
    """One line as read: its number in the file, its text, and its chain fields."""

    n: int
    text: str
    seq: int | None
    prev: str | None
    sha: str
    pack_sha: str | None


@dataclass
class Verdict:
    """What verify found: ``problems`` empty means intact; the first names the first alteration."""

    path: Path
    lines: int = 0
    sealed: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    first_altered_line: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, line: int | None, text: str) -> None:
        if line is not None and self.first_altered_line is None:
            self.first_altered_line = line
        self.problems.append(text)


def _read_lines(path: Path, verdict: Verdict) -> list[_Line]:
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        count = raw.count(b"\n") + 1
        verdict.fail(count, f"line {count} is cut short: the file does not end with a newline")
    chunks = raw.split(b"\n")
    if chunks[-1] == b"":
        chunks.pop()
    out: list[_Line] = []
    for n, chunk in enumerate(chunks, 1):
        text = chunk.decode("utf-8", errors="replace")
        seq = prev = pack_sha = None
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            seq = obj.get("seq") if isinstance(obj.get("seq"), int) else None
            prev = obj.get("prev_sha256") if isinstance(obj.get("prev_sha256"), str) else None
            rp = obj.get("rule_pack")
            pack_sha = rp.get("sha256") if isinstance(rp, dict) else None
        out.append(_Line(n, text, seq, prev, line_sha256(text), pack_sha))
    verdict.lines = len(out)
    return out


def _first_break(lines: list[_Line]) -> int | None:
    """Index of the first line whose number or link is not what an untouched file has."""
    prev = GENESIS
    for i, line in enumerate(lines):
        if line.seq != i + 1 or line.prev != prev:
            return i
        prev = line.sha
    return None


def _diagnose(lines: list[_Line], i: int, verdict: Verdict) -> None:
    """Name what happened at the first break (line ``i + 1``)."""
    line = lines[i]
    n = line.n
    if line.seq is None or line.prev is None:
        what = "not a finding" if line.pack_sha is None else "a finding without chain fields"
        verdict.fail(n, f"line {n} was inserted or damaged: it is {what}")
        return
    expected = i + 1
    later = {ln.seq for ln in lines[i + 1 :]}
    earlier = {ln.seq for ln in lines[:i]}
    if line.seq in earlier:
        verdict.fail(n, f"line {n} was inserted: it repeats finding #{line.seq}")
    elif line.seq > expected:
        gone = [s for s in range(expected, line.seq) if s not in later]
        if len(gone) == line.seq - expected:
            span = f"#{expected}" if len(gone) == 1 else f"#{expected} to #{line.seq - 1}"
            verdict.fail(n, f"finding {span} was deleted before line {n}")
        else:
            verdict.fail(
                n, f"lines were reordered: line {n} holds finding #{line.seq}, expected #{expected}"
            )
    elif line.seq < expected:
        verdict.fail(n, f"line {n} was inserted or moved: it holds finding #{line.seq}")
    else:  # the number is right and the link is not: this line or the one before changed
        nxt = lines[i + 1].prev if i + 1 < len(lines) else None
        if nxt is not None and nxt != line.sha:
            verdict.fail(n, f"line {n} was changed (its recorded links no longer match)")
        else:
            verdict.fail(
                n - 1, f"line {n - 1} was changed: its hash is not the one line {n} records"
            )


def _check_seal(lines: list[_Line], seal_path: Path, verdict: Verdict) -> dict[str, Any] | None:
    if not seal_path.is_file():
        verdict.fail(None, f"no seal beside the file ({seal_path.name}): its end cannot be checked")
        return None
    try:
        seal = json.loads(seal_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        verdict.fail(None, f"the seal {seal_path.name} is not a seal (not JSON)")
        return None
    if not isinstance(seal, dict) or seal.get("format") != SEAL_FORMAT:
        verdict.fail(None, f"the seal {seal_path.name} is not a {SEAL_FORMAT} seal")
        return None
    verdict.sealed = True
    count, last = seal.get("findings"), seal.get("last_sha256")
    have_last = lines[-1].sha if lines else GENESIS
    if isinstance(count, int) and len(lines) < count:
        verdict.fail(
            len(lines) + 1,
            f"the file ends early: {len(lines)} of the {count} sealed findings are there "
            f"(#{len(lines) + 1} onwards are missing)",
        )
    elif isinstance(count, int) and len(lines) > count:
        verdict.fail(count + 1, f"line {count + 1} onwards were added after the seal ({count})")
    elif have_last != last:
        verdict.fail(len(lines) or None, f"line {len(lines)} is not the last line that was sealed")
    return seal


def _check_pack(
    lines: list[_Line], seal: dict[str, Any] | None, pack_dir: Path, v: Verdict
) -> None:
    from pumpguard.engine.pack import load_pack

    ref = (seal or {}).get("rule_pack") or {}
    pack = load_pack(pack_dir, edition=ref.get("edition"))
    if ref and ref.get("sha256") != pack.ref.sha256:
        v.fail(
            None,
            f"the rule pack {pack_dir} (sha256 {pack.ref.sha256[:16]}) is not the sealed one "
            f"({str(ref.get('sha256'))[:16]})",
        )
    for line in lines:
        if line.pack_sha is not None and line.pack_sha != pack.ref.sha256:
            v.fail(
                line.n, f"line {line.n} was raised under another rule pack ({line.pack_sha[:16]})"
            )
            break
    if v.ok:
        v.notes.append(
            f"rule pack {pack.ref.name} {pack.ref.version} sha256 {pack.ref.sha256[:16]} matches"
        )


def verify_findings(
    path: Path, *, pack_dir: Path | None = None, seal_path: Path | None = None
) -> Verdict:
    """Check the chain, the seal and (if given) the rule pack of one findings file."""
    verdict = Verdict(path)
    lines = _read_lines(path, verdict)
    if lines and all(ln.seq is None and ln.prev is None for ln in lines) and verdict.ok:
        verdict.fail(None, "the file carries no hash chain (written before chains, or rewritten)")
        return verdict
    i = _first_break(lines)
    if i is not None:
        _diagnose(lines, i, verdict)
    seal = _check_seal(lines, seal_path or path.with_name(path.name + SEAL_SUFFIX), verdict)
    if pack_dir is not None:
        _check_pack(lines, seal, pack_dir, verdict)
    return verdict


def add_parser(sub: Any) -> None:
    vp = sub.add_parser("verify", help="check a findings file's hash chain, seal and rule pack")
    vp.add_argument("findings", type=Path, metavar="FINDINGS.jsonl")
    vp.add_argument("--pack", type=Path, help="also check the findings were raised under this pack")
    vp.add_argument("--seal", type=Path, help="the seal (default: FINDINGS.jsonl.seal beside it)")


def run(args: argparse.Namespace) -> int:
    path: Path = args.findings
    if not path.is_file():
        sys.stderr.write(f"pumpguard verify: {path}: no such file\n")
        return EXIT_USAGE
    verdict = verify_findings(path, pack_dir=args.pack, seal_path=args.seal)
    _print(verdict)
    return EXIT_OK if verdict.ok else EXIT_ALTERED


def _print(verdict: Verdict) -> None:
    w = sys.stdout.write
    if verdict.ok:
        w(f"ok  {verdict.path}: {verdict.lines} findings, chain and seal intact\n")
    else:
        w(f"ALTERED  {verdict.path}\n")
    for p in verdict.problems:
        w(f"  {p}\n")
    for note in verdict.notes:
        w(f"  {note}\n")
