"""The protocol numbers a drill needs, read from the loaded rule pack and nothing else.

The drills used to keep their own copies of cycle maxima, doses, windows and
thresholds, and those copies drifted from the pack (a drill then "misses" a
deviation the pack was never asked to see). Here every clinical number comes
from :attr:`CompiledPack.params`, so an edition or a site file that moves a
threshold moves the generator and the expected codes with it.

A few parameters are being added to the pack (issue 8); until they exist, each
is read with the fallback named beside it, never a number of our own choosing
where the pack has one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.rules import default_pack

__all__ = ["Protocol", "load_protocol", "mosteller"]


def mosteller(height_cm: float, weight_kg: float) -> float:
    """Body surface area (m²) by Mosteller, as the spec derives it when no BSA is recorded."""
    return math.sqrt(height_cm * weight_kg / 3600)


@dataclass(frozen=True, slots=True)
class Protocol:
    """The effective parameters of one pack, edition and site, with the readings drills need."""

    edition: str
    site: str | None
    params: Mapping[str, Any]

    @classmethod
    def from_pack(cls, pack: CompiledPack) -> Protocol:
        return cls(pack.edition, pack.site, pack.params)

    def num(self, name: str) -> float:
        """A numeric parameter of the pack in force."""
        if name in self.params:
            return float(self.params[name])
        msg = f"the rule pack has no parameter {name!r}"
        raise KeyError(msg)

    def flag(self, name: str) -> bool:
        """A yes/no parameter of the pack in force."""
        if name in self.params:
            return bool(self.params[name])
        msg = f"the rule pack has no parameter {name!r}"
        raise KeyError(msg)

    def minutes(self, name: str) -> int:
        """An hours parameter in whole minutes (the generator's clock)."""
        return round(self.num(name) * 60)

    # -- course --------------------------------------------------------------------
    def max_cycles(self, indication: str) -> int:
        """The course maximum for an indication."""
        if indication == "relapsed_refractory":
            return int(self.num("max_cycles"))
        if indication == "consolidation":
            return int(self.num("max_cycles_consolidation"))
        return int(self.num("max_cycles_mrd"))

    def continued(self, indication: str, cycle: int) -> bool:
        """A continued-therapy cycle (R/R, by its number), where the edition has them."""
        return (
            indication == "relapsed_refractory"
            and cycle >= self.num("continued_first_cycle")
            and self.num("tfi_continued_h") != self.num("tfi_min_h")
        )

    def treatment_free_h(self, indication: str, previous_cycle: int) -> float:
        """The minimum interval after ``previous_cycle``."""
        if self.continued(indication, previous_cycle):
            return self.num("tfi_continued_h")
        return self.num("tfi_min_h")

    def hospital_days(self, indication: str, cycle: int) -> float:
        key = "rr" if indication == "relapsed_refractory" else "mrd"
        name = f"hosp_days_{key}_c{cycle}"
        return self.num(name) if name in self.params else 0.0

    # -- dose ----------------------------------------------------------------------
    def fixed_band(self, weight_kg: float) -> bool:
        return weight_kg >= self.num("weight_band_kg")

    def doses(self, weight_kg: float, bsa_m2: float | None) -> tuple[float, float]:
        """(starting, full) mcg/day for a weight band and BSA, capped as the label caps them."""
        start, full = self.num("dose_start_mcg_day"), self.num("dose_target_mcg_day")
        if self.fixed_band(weight_kg):
            return start, full
        bsa = 1.0 if bsa_m2 is None else bsa_m2
        return (
            round(min(self.num("dose_start_mcg_m2_day") * bsa, start), 2),
            round(min(self.num("dose_target_mcg_m2_day") * bsa, full), 2),
        )

    def adult_doses(self) -> tuple[float, float]:
        return self.num("dose_start_mcg_day"), self.num("dose_target_mcg_day")

    # -- premedication -------------------------------------------------------------
    def child(self, age_years: int) -> bool:
        return age_years < self.num("adult_age_years")

    def premed_at_cycle_start(self, age_years: int, cycle: int) -> bool:
        """Adults before the first dose of every cycle; children in cycle 1 only."""
        return cycle == 1 or not self.child(age_years)

    def premed_at_step_up(self, age_years: int, indication: str, cycle: int) -> bool:
        """R/R only: adults at every step-up (day 8, after a hold); children in cycle 1."""
        if indication != "relapsed_refractory":
            return False
        return cycle == 1 or not self.child(age_years)

    def premed_at_restart(self, age_years: int, indication: str, cycle: int) -> bool:
        """After 4 h or more: R/R adults always, children in cycle 1, others by site option."""
        if self.child(age_years):
            return cycle == 1
        if indication == "relapsed_refractory":
            return True
        return self.flag("premed_restart_mrd_consolidation")

    def premed_doses(
        self, age_years: int, indication: str, bsa_m2: float | None
    ) -> tuple[tuple[str, float], ...]:
        """The premedications that satisfy the label (any one of them), as (drug, mg)."""
        if self.child(age_years):
            per_m2 = self.num("premed_dex_child_mg_m2") * (1.0 if bsa_m2 is None else bsa_m2)
            cap = self.num("premed_dex_child_max_mg")
            return (("dexamethasone", min(cap, math.ceil(per_m2 * 10) / 10)),)
        if indication == "mrd_positive":
            return (
                ("dexamethasone", self.num("premed_dex_mrd_mg")),
                ("prednisone", self.num("premed_pred_mrd_mg")),
            )
        return (("dexamethasone", self.num("premed_dex_adult_mg")),)


def load_protocol(
    edition: str | None = None,
    site_file: str | Path | None = None,
    pack_path: str | Path | None = None,
) -> tuple[CompiledPack, Protocol]:
    """Load the pack for an edition and site, and its protocol."""
    pack = load_pack(pack_path or default_pack(), edition=edition, site_file=site_file)
    return pack, Protocol.from_pack(pack)
