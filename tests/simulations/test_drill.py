"""Drills against the pack: the catalogue is caught, clean courses stay quiet.

Deviations whose codes no rule of the loaded pack can raise yet are pending,
not failures; as rules land, the same tests start to require them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pumpguard.cli import main
from pumpguard.engine.findings import Severity
from pumpguard.simulations.generator import generate
from pumpguard.simulations.montecarlo import generate_population
from pumpguard.simulations.scenario import catalogue_dir, iter_scenario_files, load_scenario
from pumpguard.simulations.scoring import raisable_codes, run_engine, score

CATALOGUE = list(iter_scenario_files(catalogue_dir()))


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_catalogue_scenario_is_detected_without_false_findings(path, pack_for):
    """Each scorable deviation is detected; nothing else above info is raised."""
    scenario = load_scenario(path)
    pack = pack_for(scenario.patient.edition)
    gen = generate(scenario)
    result = run_engine(gen.lines, pack)
    assert result.engine_errors == 0
    sc = score(gen, result.findings, raisable_codes(pack))
    assert [(d.injected.kind, d.missing) for d in sc.missed] == []
    assert [(f.code, f.ts, f.message) for f in sc.false_findings] == []
    for d in sc.deviations:
        assert d.status in ("detected", "pending")


def test_clean_population_raises_nothing_above_info(pack_for):
    """200 patients over full courses, no deviation: every finding is info at most."""
    gen = generate_population(200, 0.0, seed=20261124)
    assert gen.patients == 200
    result = run_engine(gen.lines, pack_for("seed"))
    loud = [f for f in result.findings if f.severity != Severity.INFO]
    assert [(f.code, f.patient_id, f.ts, f.message) for f in loud[:5]] == []


def test_population_with_errors_is_scored(pack_for):
    """A small population at a high error rate: every scorable deviation detected."""
    pack = pack_for("seed")
    gen = generate_population(40, 0.8, seed=5)
    result = run_engine(gen.lines, pack)
    sc = score(gen, result.findings, raisable_codes(pack))
    assert len(sc.deviations) > 20
    assert [(d.injected.patient_id, d.injected.kind, d.missing) for d in sc.missed] == []
    assert [(f.code, f.patient_id, f.message) for f in sc.false_findings] == []


class TestCommand:
    def test_one_scenario_json_report(self, tmp_path: Path, capsys):
        report = tmp_path / "report.json"
        stream = tmp_path / "stream.jsonl"
        path = catalogue_dir() / "01_flush_at_bag_change.yaml"
        assert main(["drill", str(path), "--json", str(report), "--out", str(stream)]) == 0
        data = json.loads(report.read_text())
        [dev] = data["scenarios"][0]["deviations"]
        assert dev["status"] == "detected"
        assert dev["found"]["LINE_FLUSH"] >= dev["onset"]
        assert stream.read_text() == generate(load_scenario(path)).text()
        assert "PASS" in capsys.readouterr().out

    def test_missed_deviation_exits_non_zero(self, tmp_path: Path, capsys):
        """A deviation that owes a code the run never raises is missed: exit 1."""
        path = tmp_path / "wrong.yaml"
        path.write_text(
            "patient: {id: P-W}\ncourse: {cycles: 1}\n"
            "deviations:\n  - {kind: bolus, cycle: 1, day: 12, expect: [LINE_FLUSH, X_NEVER]}\n"
        )
        # X_NEVER is not raisable, so it is pending; LINE_FLUSH is found -> passes
        assert main(["drill", str(path)]) == 0
        path.write_text(
            "patient: {id: P-W}\ncourse: {cycles: 1}\n"
            "deviations:\n"
            "  - {kind: bolus, cycle: 1, day: 12, expect: [HOSPITALIZATION_REQUIRED]}\n"
        )
        assert main(["drill", str(path)]) == 1
        out = capsys.readouterr().out
        assert "MISSED" in out
        assert "FALSE" in out  # the bolus's LINE_FLUSH is now unexplained

    def test_monte_carlo_writes_the_stream(self, tmp_path: Path, capsys):
        out = tmp_path / "pop.jsonl"
        code = main(
            ["drill", "--patients", "5", "--error-rate", "0", "--seed", "9", "--out", str(out)]
        )
        assert code == 0
        assert out.read_text() == generate_population(5, 0.0, seed=9).text()
        assert "events/s" in capsys.readouterr().out
