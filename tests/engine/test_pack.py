"""Rule packs: schema, file-and-line errors, editions and site parameters."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pumpguard.engine.errors import RulePackError
from pumpguard.engine.pack import load_pack
from pumpguard.rules import default_pack


@pytest.fixture(name="packdir")
def _packdir(tmp_path: Path) -> Path:
    dest = tmp_path / "pack"
    shutil.copytree(default_pack(), dest)
    return dest


def _write_rule(packdir: Path, text: str) -> None:
    (packdir / "flush.yaml").write_text(text)


def test_bundled_pack_loads_with_a_stable_hash():
    a, b = load_pack(default_pack()), load_pack(default_pack())
    assert a.ref.sha256 == b.ref.sha256
    assert len(a.ref.sha256) == 64
    assert a.ref.edition == "seed"


def test_every_rule_cites_a_declared_requirement():
    pack = load_pack(default_pack())
    for rule in pack.rules:
        assert rule.spec.requirement in pack.spec.requirements
        assert rule.spec.citation.startswith(rule.spec.requirement)


def test_edition_overrides_parameters():
    seed = load_pack(default_pack())
    new = load_pack(default_pack(), edition="label-2024")
    assert (seed.params["max_cycles"], new.params["max_cycles"]) == (5, 9)
    assert new.ref.edition == "label-2024"


def test_unknown_edition_is_refused():
    with pytest.raises(RulePackError, match="unknown edition 'label-1999'"):
        load_pack(default_pack(), edition="label-1999")


def test_site_file_overrides_a_parameter(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text("site: St Elsewhere\nparameters:\n  supervision_window_h: 2\n")
    pack = load_pack(default_pack(), site_file=site)
    assert pack.params["supervision_window_h"] == 2
    assert pack.site == "St Elsewhere"


def test_site_file_cannot_invent_parameters(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text("site: X\nparameters:\n  flush_allowed: true\n")
    with pytest.raises(RulePackError, match="unknown parameter 'flush_allowed'"):
        load_pack(default_pack(), site_file=site)


def test_site_file_with_a_tab_indent_is_refused_naming_the_tab_and_its_line(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text("site: X\nparameters:\n\tsupervision_window_h: 2\n")
    with pytest.raises(RulePackError, match=r"site.yaml:3: not valid YAML: found character '\\t'"):
        load_pack(default_pack(), site_file=site)


def test_site_file_keeps_parameter_types(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text("site: X\nparameters:\n  reinit_threshold_h: four\n")
    with pytest.raises(RulePackError, match="must be int"):
        load_pack(default_pack(), site_file=site)


def test_error_names_file_and_line(packdir: Path):
    _write_rule(
        packdir,
        "rules:\n"
        "  - id: BLN-X-01\n"
        "    requirement: R-FLUSH\n"
        "    title: t\n"
        "    citation: c\n"
        "    on: [pump.flush]\n"
        "    when: state.no_such_field\n"
        "    then: [{close_deadline: reinit_supervision}]\n",
    )
    with pytest.raises(RulePackError) as info:
        load_pack(packdir)
    assert "flush.yaml:2: rule BLN-X-01: state.no_such_field" in str(info.value)


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("on: [pump.teleport]", "not a canonical event type"),
        ("on: [deadline.nothing]", "no rule opens a deadline"),
        ("requirement: R-NOPE", "unknown requirement"),
        ("then: [{raise: {code: NOT_A_CODE, message: m, action: a}}]", "unknown code"),
        ("then: [{raise: {code: LINE_FLUSH, message: '{state.nope}', action: a}}]", "placeholder"),
        ("then: [{set: {fact: undeclared, value: 1}}]", "undeclared fact"),
        (
            "then: [{raise: {code: LINE_FLUSH, message: m, action: a}, close_deadline: x}]",
            "exactly one verb",
        ),
    ],
)
def test_pack_mistakes_are_refused(packdir: Path, rule: str, why: str):
    fields = {
        "id": "id: BLN-X-01",
        "requirement": "requirement: R-FLUSH",
        "title": "title: t",
        "citation": "citation: c",
        "on": "on: [pump.flush]",
        "then": "then: [{close_deadline: reinit_supervision}]",
    }
    fields[rule.split(":", 1)[0]] = rule
    _write_rule(packdir, "rules:\n  - " + "\n    ".join(fields.values()) + "\n")
    with pytest.raises(RulePackError, match=why):
        load_pack(packdir)


def test_yaml_on_key_is_not_a_boolean(packdir: Path):
    """YAML 1.1 reads a bare `on:` as true; the pack loader does not."""
    pack = load_pack(packdir)
    assert pack.rules[0].spec.on == ["pump.flush"]


def test_thresholds_live_in_the_pack_not_the_engine():
    """No engine module mentions the clinical thresholds."""
    engine_dir = Path(__import__("pumpguard.engine").engine.__file__).parent
    text = "".join(p.read_text() for p in engine_dir.glob("*.py"))
    for needle in ("216", "blinatumomab", "dexamethasone", "4.0 *", "REINIT"):
        assert needle not in text


def test_libyaml_and_pure_python_parsers_read_every_pack_file_alike():
    import yaml
    from pumpguard.engine import loader

    pure = loader.pack_loader(yaml.SafeLoader)
    files = sorted(Path(default_pack()).rglob("*.yaml"))
    assert files
    for path in files:
        assert loader._load_yaml(path) == loader._load_yaml(path, pure), path
