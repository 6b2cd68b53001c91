"""Requirement scenarios: the bag and the pump.

R-FLUSH, R-BAG-TIME, R-BAG-RATE, R-BAG-WHO, R-BAG-PRESERV, R-PUMP.

Each function is one case registered for ``build.py`` (see its docstring).
"""

from __future__ import annotations

from scn import MIN, Scenario, Scn, c1_start, scenario


# -- R-FLUSH ---------------------------------------------------------------------
@scenario
def flush_pump_fires() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("pump.flush", 5, volume_ml=5)
    return "flush_pump_fires", "R-FLUSH", ["LINE_FLUSH"], "seed", s


@scenario
def flush_aspirated_silent() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("nursing.line_flush", 5, volume_ml=10, aspirated_first=True)
    return "flush_aspirated_silent", "R-FLUSH", [], "seed", s


@scenario
def flush_at_completion_boundary() -> Scenario:
    s = Scn()
    bag = c1_start(s)
    s.complete(30, bag).add("nursing.line_flush", 30 + MIN, volume_ml=10)
    return "flush_at_completion_boundary", "R-FLUSH", ["LINE_FLUSH"], "seed", s


# -- R-BAG-TIME ------------------------------------------------------------------
@scenario
def bag_overdue_fires() -> Scenario:
    s = Scn()
    bag = c1_start(s, hours=24)
    s.complete(25 + 30 * MIN, bag)
    return "bag_overdue_fires", "R-BAG-TIME", ["BAG_OVERDUE"], "seed", s


@scenario
def bag_on_time_silent() -> Scenario:
    s = Scn()
    bag = c1_start(s, hours=24)
    s.complete(24, bag)
    return "bag_on_time_silent", "R-BAG-TIME", [], "seed", s


@scenario
def bag_stopped_exactly_at_grace_boundary() -> Scenario:
    s = Scn()
    bag = c1_start(s, hours=24)
    s.complete(25, bag)
    return "bag_stopped_exactly_at_grace_boundary", "R-BAG-TIME", [], "seed", s


@scenario
def bag_paused_past_time_restarted_fires() -> Scenario:
    s = Scn()
    c1_start(s, hours=24)
    s.add("pump.infusion_stopped", 20, reason="user").add(
        "nursing.supervision", 26, actor_role="nurse"
    )
    s.premed(25.5).add("pump.infusion_resumed", 26)
    return "bag_paused_past_time_restarted_fires", "R-BAG-TIME", ["BAG_OVERDUE"], "seed", s


# -- R-BAG-RATE ------------------------------------------------------------------
@scenario
def rate_7day_bag_at_24h_rate_fires() -> Scenario:
    s = Scn()
    s.add("cycle.ordered", -6, cycle=1, phase="induction", dose_mcg_day=9)
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1)
    s.bag_start(0, 9, hours=168, rate=10.0)
    return "rate_7day_bag_at_24h_rate_fires", "R-BAG-RATE", ["RATE_MISMATCH"], "seed", s


@scenario
def rate_at_tolerance_boundary_silent() -> Scenario:
    s = Scn()
    s.add("cycle.ordered", -6, cycle=1, phase="induction", dose_mcg_day=9)
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1)
    s.bag_start(0, 9, rate=10.5)
    return "rate_at_tolerance_boundary_silent", "R-BAG-RATE", [], "seed", s


@scenario
def rate_just_beyond_tolerance_fires() -> Scenario:
    s = Scn()
    s.add("cycle.ordered", -6, cycle=1, phase="induction", dose_mcg_day=9)
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1)
    s.bag_start(0, 9, rate=10.6)
    return "rate_just_beyond_tolerance_fires", "R-BAG-RATE", ["RATE_MISMATCH"], "seed", s


# -- R-BAG-WHO -------------------------------------------------------------------
def _bag_change_by(role: str) -> Scn:
    s = Scn()
    bag = c1_start(s, hours=24)
    s.complete(24, bag).add("nursing.bag_change", 24 + 2 * MIN, bag_id="B2", actor_role=role)
    s.bag_start(24 + 5 * MIN, 9)
    return s


@scenario
def bag_changed_by_caregiver_fires() -> Scenario:
    return (
        "bag_changed_by_caregiver_fires",
        "R-BAG-WHO",
        ["BAG_CHANGE_UNQUALIFIED"],
        "seed",
        _bag_change_by("caregiver"),
    )


@scenario
def bag_changed_by_nurse_silent() -> Scenario:
    return "bag_changed_by_nurse_silent", "R-BAG-WHO", [], "seed", _bag_change_by("nurse")


@scenario
def bag_changed_by_home_health_nurse_boundary() -> Scenario:
    return (
        "bag_changed_by_home_health_nurse_boundary",
        "R-BAG-WHO",
        [],
        "seed",
        _bag_change_by("home_health_nurse"),
    )


# -- R-BAG-PRESERV ---------------------------------------------------------------
def _preservative_bag(weight: float) -> Scn:
    s = Scn(weight=weight, bsa_m2=0.8 if weight < 45 else 1.9, birth_date="2018-05-01")
    s.add("cycle.ordered", -6, cycle=1, phase="induction")
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=4 if weight < 45 else 20)
    dose = 4.0 if weight < 45 else 9.0
    s.bag_start(0, dose, hours=168)
    return s


@scenario
def preservative_bag_20kg_fires() -> Scenario:
    return (
        "preservative_bag_20kg_fires",
        "R-BAG-PRESERV",
        ["PRESERVATIVE_BAG_UNDERWEIGHT"],
        "seed",
        _preservative_bag(20),
    )


@scenario
def preservative_bag_20kg_label_2024_silent() -> Scenario:
    return (
        "preservative_bag_20kg_label_2024_silent",
        "R-BAG-PRESERV",
        [],
        "label-2024",
        _preservative_bag(20),
    )


@scenario
def preservative_bag_22kg_boundary_silent() -> Scenario:
    return (
        "preservative_bag_22kg_boundary_silent",
        "R-BAG-PRESERV",
        [],
        "seed",
        _preservative_bag(22),
    )


# -- R-PUMP ----------------------------------------------------------------------
def _pump(kind: str, lockable: bool) -> Scn:
    s = Scn()
    s.add("pump.registered", -7, pump_id="PUMP-1", device_kind=kind, lockable=lockable, alarms=True)
    c1_start(s)
    return s


@scenario
def pump_elastomeric_fires() -> Scenario:
    return (
        "pump_elastomeric_fires",
        "R-PUMP",
        ["UNSUITABLE_PUMP"],
        "seed",
        _pump("elastomeric", True),
    )


@scenario
def pump_volumetric_lockable_silent() -> Scenario:
    return "pump_volumetric_lockable_silent", "R-PUMP", [], "seed", _pump("volumetric", True)


@scenario
def pump_not_lockable_boundary() -> Scenario:
    return (
        "pump_not_lockable_boundary",
        "R-PUMP",
        ["UNSUITABLE_PUMP"],
        "seed",
        _pump("volumetric", False),
    )
