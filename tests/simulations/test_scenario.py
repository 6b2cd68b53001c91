"""The scenario language rejects drills that cannot happen, with a reason.

Shape errors are refused when the file is read; what depends on the protocol
(the weight band, the preservative floor, the course maximum) is refused by
``Scenario.check`` against the loaded pack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pumpguard.simulations.protocol import Protocol
from pumpguard.simulations.scenario import (
    DEVIATIONS,
    Deviation,
    Patient,
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

    def test_small_patient_needs_bsa_or_height(self, protocol_for):
        """Under the weight band the dose is per m², so the scenario must say BSA or height."""
        s = Scenario(name="x", patient={"weight_kg": 20, "age_years": 6})
        with pytest.raises(ValueError, match="bsa_m2 or height_cm"):
            s.check(protocol_for("seed"))
        Scenario(name="x", patient={"weight_kg": 20, "age_years": 6, "height_cm": 115}).check(
            protocol_for("seed")
        )

    def test_preservative_bags_not_for_small_patients(self, protocol_for):
        """72 h+ bags hold benzyl alcohol: refused for a 15 kg child (seed floor 22 kg)."""
        s = Scenario(
            name="x",
            patient={"weight_kg": 15, "bsa_m2": 0.65, "age_years": 4},
            course={"home_bag_hours": 168},
        )
        with pytest.raises(ValueError, match="preservative"):
            s.check(protocol_for("seed"))
        s.check(protocol_for("label-2024"))  # the 2024 floor is 5.4 kg

    def test_extra_cycles_must_be_declared(self, protocol_for):
        """A course longer than the edition allows is only valid as a declared deviation."""
        with pytest.raises(ValueError, match="beyond_max_cycles"):
            Scenario(name="x", course={"cycles": 6}).check(protocol_for("seed"))
        Scenario(name="x", course={"cycles": 6}).check(protocol_for("label-2024"))

    def test_deviation_beyond_the_course(self, protocol_for):
        s = Scenario(name="x", course={"cycles": 1}, deviations=[{"kind": "bolus", "cycle": 2}])
        with pytest.raises(ValueError, match="beyond the course"):
            s.check(protocol_for("seed"))

    def test_occlusion_under_the_reinit_threshold_is_no_deviation(self, protocol_for):
        """A 3 h stop owes nothing under the pack's 4 h threshold, so it cannot be a drill."""
        s = Scenario(name="x", deviations=[{"kind": "occlusion", "day": 12, "hours": 3}])
        with pytest.raises(ValueError, match="reinitiation threshold"):
            s.check(protocol_for("seed"))

    def test_bad_file_names_the_file(self, tmp_path: Path):
        bad = tmp_path / "bad.yaml"
        bad.write_text("patient: {weight_kg: -1}\n")
        with pytest.raises(ScenarioError, match=r"bad\.yaml"):
            load_scenario(bad)

    def test_occlusion_codes_follow_its_flags(self, protocol_for):
        """A supervised but unpremedicated restart owes only the premedication finding."""
        d = Deviation(kind="occlusion", supervised=True)
        assert d.owed(Patient(), protocol_for("seed")) == ("PREMEDICATION_MISSING",)

    def test_mrd_adult_restart_owes_no_premedication(self, protocol_for):
        """R-PREMED revised: MRD-positive adults are premedicated before each cycle only."""
        d = Deviation(kind="occlusion")
        mrd = Patient(indication="mrd_positive")
        assert d.owed(mrd, protocol_for("seed")) == ("REINITIATION_UNSUPERVISED",)

    def test_child_restart_owes_premedication_in_cycle_1_only(self, protocol_for):
        child = Patient(weight_kg=30, bsa_m2=1.0, age_years=9)
        proto: Protocol = protocol_for("seed")
        assert "PREMEDICATION_MISSING" in Deviation(kind="occlusion").owed(child, proto)
        later = Deviation(kind="occlusion", cycle=2)
        assert later.owed(child, proto) == ("REINITIATION_UNSUPERVISED",)


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
