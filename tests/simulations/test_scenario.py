"""The scenario language rejects drills that cannot happen, with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from pumpguard.simulations.scenario import (
    DEVIATIONS,
    Deviation,
    Scenario,
    ScenarioError,
    catalogue_dir,
    iter_scenario_files,
    load_scenario,
)
from pydantic import ValidationError


class TestValidation:
    def test_unknown_kind_names_the_known_ones(self):
        """A typo in a deviation kind lists the kinds that exist."""
        with pytest.raises(ValidationError, match="flush_at_bag_change"):
            Deviation(kind="flush_at_bag_chnage")

    def test_small_patient_needs_bsa(self):
        """Under 45 kg the dose is per m², so the scenario must say the BSA."""
        with pytest.raises(ValidationError, match="bsa_m2"):
            Scenario(name="x", patient={"weight_kg": 20, "age_years": 6})

    def test_preservative_bags_not_for_small_patients(self):
        """72 h+ bags hold benzyl alcohol: refused for a 15 kg child (seed edition)."""
        with pytest.raises(ValidationError, match="preservative"):
            Scenario(
                name="x",
                patient={"weight_kg": 15, "bsa_m2": 0.65, "age_years": 4},
                course={"home_bag_hours": 168},
            )

    def test_extra_cycles_must_be_declared(self):
        """A course longer than the edition allows is only valid as a declared deviation."""
        with pytest.raises(ValidationError, match="beyond_max_cycles"):
            Scenario(name="x", course={"cycles": 6})

    def test_deviation_beyond_the_course(self):
        with pytest.raises(ValidationError, match="beyond the course"):
            Scenario(name="x", course={"cycles": 1}, deviations=[{"kind": "bolus", "cycle": 2}])

    def test_bad_file_names_the_file(self, tmp_path: Path):
        bad = tmp_path / "bad.yaml"
        bad.write_text("patient: {weight_kg: -1}\n")
        with pytest.raises(ScenarioError, match=r"bad\.yaml"):
            load_scenario(bad)

    def test_occlusion_codes_follow_its_flags(self):
        """A supervised but unpremedicated restart owes only the premedication finding."""
        d = Deviation(kind="occlusion", supervised=True)
        assert d.codes == ("PREMEDICATION_MISSING",)


class TestCatalogue:
    def test_every_kind_has_a_scenario(self):
        """The bundled catalogue covers every deviation kind the generator knows."""
        kinds = {
            d.kind
            for f in iter_scenario_files(catalogue_dir())
            for d in load_scenario(f).deviations
        }
        assert kinds == set(DEVIATIONS)

    def test_every_catalogue_deviation_declares_its_codes(self):
        for f in iter_scenario_files(catalogue_dir()):
            for d in load_scenario(f).deviations:
                assert d.expect, f"{f.name}: {d.kind} declares no expected code"
