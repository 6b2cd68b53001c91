"""`pumpguard verify`: the hash chain and the seal say where a findings file was altered."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from pumpguard.adapters.jsonl import GENESIS, line_sha256, unchained
from pumpguard.cli import bundled_demo_course, main
from pumpguard.pipeline import RejectReport, audit
from pumpguard.rules import default_pack
from pumpguard.verify import verify_findings

COURSE = bundled_demo_course()


@pytest.fixture(scope="module", name="sealed")
def _sealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "findings.jsonl"
    assert main(["replay", str(COURSE), "--out", str(out)]) == 0
    return out


@pytest.fixture(name="copy")
def _copy(sealed: Path, tmp_path: Path) -> Path:
    """A copy of the sealed findings and its seal, to alter."""
    target = tmp_path / "findings.jsonl"
    shutil.copy(sealed, target)
    shutil.copy(sealed.with_name(sealed.name + ".seal"), target.with_name(target.name + ".seal"))
    return target


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_each_line_records_its_number_and_the_hash_of_the_line_before(sealed):
    lines = [line.rstrip("\n") for line in _lines(sealed)]
    prev = GENESIS
    for n, line in enumerate(lines, 1):
        obj = json.loads(line)
        assert (obj["seq"], obj["prev_sha256"]) == (n, prev)
        prev = line_sha256(line)
    seal = json.loads(sealed.with_name(sealed.name + ".seal").read_text())
    assert (seal["findings"], seal["last_sha256"]) == (len(lines), prev)
    assert seal["rule_pack"]["sha256"] == json.loads(lines[0])["rule_pack"]["sha256"]


def test_without_the_chain_fields_a_line_is_the_finding_as_before(sealed, pack):
    result = audit([COURSE], pack, out=io.StringIO(), rejects=RejectReport(None))
    before = [f.to_json() for f in result.findings]
    assert [unchained(line.rstrip("\n")) for line in _lines(sealed)] == before


def test_untouched_file_verifies_with_its_pack(sealed, capsys):
    assert main(["verify", str(sealed), "--pack", str(default_pack())]) == 0
    assert "chain and seal intact" in capsys.readouterr().out


def test_one_character_edit_names_the_changed_line(copy):
    lines = _lines(copy)
    lines[2] = lines[2].replace("Blinatumomab", "Blinatumomeb", 1)
    assert lines[2] != _lines(copy)[2]
    copy.write_text("".join(lines))
    verdict = verify_findings(copy)
    assert not verdict.ok
    assert verdict.first_altered_line == 3
    assert "line 3 was changed" in verdict.problems[0]


def test_deleted_line_is_named(copy):
    lines = _lines(copy)
    copy.write_text("".join(lines[:1] + lines[2:]))
    verdict = verify_findings(copy)
    assert verdict.first_altered_line == 2
    assert "finding #2 was deleted before line 2" in verdict.problems[0]


def test_reordered_pair_is_named(copy):
    lines = _lines(copy)
    lines[1], lines[2] = lines[2], lines[1]
    copy.write_text("".join(lines))
    verdict = verify_findings(copy)
    assert verdict.first_altered_line == 2
    assert "reordered" in verdict.problems[0]


def test_inserted_copy_of_a_line_is_named(copy):
    lines = _lines(copy)
    copy.write_text("".join([*lines[:3], lines[0], *lines[3:]]))
    verdict = verify_findings(copy)
    assert verdict.first_altered_line == 4
    assert "line 4 was inserted: it repeats finding #1" in verdict.problems[0]


def test_truncated_end_is_named_by_the_seal(copy):
    lines = _lines(copy)
    copy.write_text("".join(lines[:-2]))
    verdict = verify_findings(copy)
    assert verdict.first_altered_line == len(lines) - 1
    assert f"{len(lines) - 2} of the {len(lines)} sealed findings" in verdict.problems[0]


def test_line_cut_in_the_middle_is_named(copy):
    data = copy.read_bytes()
    copy.write_bytes(data[: len(data) - 40])
    verdict = verify_findings(copy)
    assert verdict.first_altered_line == len(_lines(copy))
    assert "cut short" in verdict.problems[0]


def test_findings_under_another_pack_fail_the_pack_check(copy, tmp_path):
    other = tmp_path / "pack"
    shutil.copytree(default_pack(), other)
    flush = other / "flush.yaml"
    flush.write_text(flush.read_text() + "\n# a local edit\n")
    verdict = verify_findings(copy, pack_dir=other)
    assert "is not the sealed one" in verdict.problems[0]


def test_missing_seal_fails_and_says_so(copy, capsys):
    copy.with_name(copy.name + ".seal").unlink()
    assert main(["verify", str(copy)]) == 1
    assert "no seal beside the file" in capsys.readouterr().out
