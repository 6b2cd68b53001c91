"""The drills follow the loaded pack: a site file or an edition moves the stream and the codes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from pumpguard.cli import main
from pumpguard.engine.findings import Severity
from pumpguard.simulations.generator import generate
from pumpguard.simulations.montecarlo import generate_population
from pumpguard.simulations.protocol import Protocol, load_protocol
from pumpguard.simulations.scenario import Scenario, catalogue_dir, load_scenario
from pumpguard.simulations.scoring import raisable_codes, run_engine, score


def _site(tmp_path: Path, **params: float) -> Path:
    path = tmp_path / "site.yaml"
    body = "".join(f"  {k}: {v}\n" for k, v in params.items())
    path.write_text(f"site: test-ward\nparameters:\n{body}")
    return path


def _events(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


def _t(e: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00"))


def _premed_leads_min(lines: list[str]) -> list[float]:
    """Minutes from each premedication to the next start or resume."""
    events = _events(lines)
    leads = []
    for i, e in enumerate(events):
        if e["type"] != "medication.administered":
            continue
        nxt = next(
            x for x in events[i:] if x["type"] in ("pump.infusion_started", "pump.infusion_resumed")
        )
        leads.append((_t(nxt) - _t(e)).total_seconds() / 60)
    return leads


def _pauses_min(lines: list[str]) -> list[float]:
    events = _events(lines)
    out, stop = [], None
    for e in events:
        if e["type"] in ("pump.infusion_stopped", "pump.infusion_completed"):
            stop = _t(e)
        elif e["type"] in ("pump.infusion_started", "pump.infusion_resumed") and stop:
            out.append((_t(e) - stop).total_seconds() / 60)
            stop = None
    return out


class TestSiteFile:
    def test_premedication_moves_inside_a_narrower_window(self, tmp_path: Path):
        """premedication_window_h: 1 at the site: every dose now comes within the hour."""
        scenario = load_scenario(catalogue_dir() / "00_clean_rr_course.yaml")
        _, default = load_protocol("seed")
        pack, site = load_protocol("seed", _site(tmp_path, premedication_window_h=1))
        assert max(_premed_leads_min(generate(scenario, default).lines)) > 60
        gen = generate(scenario, site)
        assert max(_premed_leads_min(gen.lines)) <= 60
        loud = [f for f in run_engine(gen.lines, pack).findings if f.severity != Severity.INFO]
        assert loud == []

    def test_lower_reinit_threshold_makes_a_3_hour_stop_a_deviation(self, tmp_path: Path):
        """reinit_threshold_h: 2: a 3 h occlusion now owes supervision and premedication."""
        scenario = Scenario(
            name="three-hours",
            patient={"id": "P-3H"},
            course={"cycles": 1, "short_stops_per_cycle": 3},
            deviations=[{"kind": "occlusion", "cycle": 1, "day": 14, "hours": 3}],
        )
        _, default = load_protocol("seed")
        with pytest.raises(ValueError, match="reinitiation threshold"):
            scenario.check(default)
        pack, site = load_protocol("seed", _site(tmp_path, reinit_threshold_h=2))
        gen = generate(scenario, site)
        [inj] = gen.injected
        assert inj.codes == ("REINITIATION_UNSUPERVISED", "PREMEDICATION_MISSING")
        # the clean short stops now stay under the site's 2 h (less a margin)
        assert sorted(_pauses_min(gen.lines))[-2] <= 90
        sc = score(gen, run_engine(gen.lines, pack).findings, raisable_codes(pack))
        assert [d.status for d in sc.deviations] == ["detected"]
        assert sc.false_findings == []

    def test_course_maximum_follows_the_site(self, tmp_path: Path):
        """max_cycles: 3: R/R courses stop at 3, and a 4th cycle is the deviation."""
        pack, site = load_protocol("seed", _site(tmp_path, max_cycles=3))
        gen = generate_population(30, 0.0, seed=4, protocol=site, mix=frozenset())
        cycles: dict[str, int] = {}
        rr: set[str] = set()
        for e in _events(gen.lines):
            pid = str(e["patient_id"])
            if e["type"] == "patient.registered" and e["indication"] == "relapsed_refractory":
                rr.add(pid)
            if e["type"] == "cycle.ordered":
                cycles[pid] = max(cycles.get(pid, 0), int(str(e["cycle"])))
        assert rr
        assert {cycles[p] for p in rr} == {3}
        bad = generate_population(
            12, 1.0, seed=4, protocol=site, mix=frozenset(), kinds=("beyond_max_cycles",)
        )
        bad_rr = {
            str(e["patient_id"])
            for e in _events(bad.lines)
            if e["type"] == "patient.registered" and e["indication"] == "relapsed_refractory"
        }
        rr_devs = [i for i in bad.injected if i.patient_id in bad_rr]
        assert rr_devs
        assert {i.deviation.cycle for i in rr_devs} == {4}
        sc = score(bad, run_engine(bad.lines, pack).findings, raisable_codes(pack))
        assert [d.status for d in sc.deviations if d.injected in rr_devs] == ["detected"] * len(
            rr_devs
        )

    def test_a_scenario_names_its_site_file(self, tmp_path: Path, capsys):
        """The CLI loads the site a scenario names, relative to the scenario's folder."""
        _site(tmp_path, reinit_threshold_h=2)
        path = tmp_path / "drill.yaml"
        path.write_text(
            "site_file: site.yaml\npatient: {id: P-SITE}\ncourse: {cycles: 1}\n"
            "deviations:\n  - {kind: occlusion, cycle: 1, day: 14, hours: 3}\n"
        )
        assert main(["drill", str(path)]) == 0
        assert "site test-ward" in capsys.readouterr().out


class TestEdition:
    def test_continued_therapy_interval_is_the_editions(self, protocol_for):
        seed, new = protocol_for("seed"), protocol_for("label-2024")
        assert seed.treatment_free_h("relapsed_refractory", 6) == 336
        assert new.treatment_free_h("relapsed_refractory", 6) == 1344
        assert new.treatment_free_h("relapsed_refractory", 5) == 336

    def test_preservative_floor_is_the_editions(self, protocol_for):
        """A 14 kg child on 7-day bags: refused by the seed floor, drawn under label-2024."""
        scenario = load_scenario(catalogue_dir() / "34_clean_child_preserved_unflagged.yaml")
        with pytest.raises(ValueError, match="preservative"):
            scenario.check(protocol_for("seed"))
        hours = {
            e["duration_h"]
            for e in _events(generate(scenario, protocol_for("label-2024")).lines)
            if e["type"] == "bag.dispensed"
        }
        assert 168 in hours


class TestParameters:
    def test_consolidation_maximum_is_the_packs(self, protocol_for):
        assert protocol_for("label-2024").max_cycles("consolidation") == 4
        params = dict(protocol_for("label-2024").params)
        params["max_cycles_consolidation"] = 6
        assert Protocol("label-2024", None, params).max_cycles("consolidation") == 6

    def test_unknown_parameter_is_refused(self, protocol_for):
        with pytest.raises(KeyError, match="no parameter"):
            protocol_for("seed").num("not_a_parameter")
