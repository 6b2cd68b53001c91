"""Requirement scenarios: reactions, holds, stops and visibility.

R-REACT, R-HOLD, R-STOP, R-VISIBILITY.

Each function is one case registered for ``build.py`` (see its docstring).
"""

from __future__ import annotations

from scn import MIN, Scenario, Scn, c1_start, c1_stepped, neuro_hold_then_restart, scenario


# -- R-REACT, R-HOLD, R-STOP -------------------------------------------------------
def _reaction(category: str, grade: int) -> Scn:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category=category, grade=grade)
    return s


@scenario
def severe_crs_while_running_fires() -> Scenario:
    return (
        "severe_crs_while_running_fires",
        "R-REACT",
        ["SEVERE_REACTION"],
        "seed",
        _reaction("crs", 3),
    )


@scenario
def grade2_crs_silent() -> Scenario:
    return "grade2_crs_silent", "R-REACT", [], "seed", _reaction("crs", 2)


@scenario
def severe_crs_while_stopped_boundary_silent() -> Scenario:
    s = Scn()
    bag = c1_start(s)
    s.complete(29, bag).add("clinical.adverse_event", 30, category="crs", grade=3)
    return "severe_crs_while_stopped_boundary_silent", "R-REACT", [], "seed", s


def _hold_then_restart(
    resolve_h: float | None, category: str = "crs", grade_back: int = 0, restart_h: float = 60
) -> Scn:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category=category, grade=3)
    s.add("pump.infusion_stopped", 30 + MIN, reason="user")
    if resolve_h is not None:
        s.add("clinical.adverse_event", resolve_h, category=category, grade=grade_back)
    s.premed(restart_h - 1).add("nursing.supervision", restart_h, actor_role="nurse")
    s.add("pump.infusion_resumed", restart_h)
    return s


@scenario
def restart_during_crs_hold_fires() -> Scenario:
    return (
        "restart_during_crs_hold_fires",
        "R-HOLD",
        ["SEVERE_REACTION", "RESTART_DURING_HOLD"],
        "seed",
        _hold_then_restart(None),
    )


@scenario
def restart_after_crs_resolved_silent() -> Scenario:
    return (
        "restart_after_crs_resolved_silent",
        "R-HOLD",
        ["SEVERE_REACTION"],
        "seed",
        _hold_then_restart(50),
    )


@scenario
def restart_neuro_71h_after_grade1_fires() -> Scenario:
    return (
        "restart_neuro_71h_after_grade1_fires",
        "R-HOLD",
        ["SEVERE_REACTION", "RESTART_DURING_HOLD"],
        "seed",
        neuro_hold_then_restart([(210, 1)], restart_h=210 + 71),
    )


@scenario
def restart_neuro_72h_after_grade1_boundary_silent() -> Scenario:
    return (
        "restart_neuro_72h_after_grade1_boundary_silent",
        "R-HOLD",
        ["SEVERE_REACTION"],
        "seed",
        neuro_hold_then_restart([(210, 1)], restart_h=210 + 72),
    )


@scenario
def restart_after_hold_at_full_dose_fires() -> Scenario:
    s = Scn()
    c1_stepped(s)
    s.add("clinical.adverse_event", 200, category="crs", grade=3)
    s.add("pump.infusion_stopped", 200 + MIN, reason="user")
    s.add("clinical.adverse_event", 220, category="crs", grade=0)
    s.premed(229).add("pump.infusion_resumed", 230)
    return (
        "restart_after_hold_at_full_dose_fires",
        "R-HOLD",
        ["SEVERE_REACTION", "DOSE_MISMATCH"],
        "seed",
        s,
    )


@scenario
def restart_after_grade4_crs_fires() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category="crs", grade=4)
    s.add("pump.infusion_stopped", 30 + MIN, reason="user")
    s.premed(59).add("nursing.supervision", 60, actor_role="nurse")
    s.add("pump.infusion_resumed", 60)
    return (
        "restart_after_grade4_crs_fires",
        "R-STOP",
        ["SEVERE_REACTION", "DISCONTINUATION_REQUIRED", "RESTART_AFTER_DISCONTINUATION"],
        "seed",
        s,
    )


@scenario
def second_seizure_then_restart_fires() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category="seizure", grade=2)
    s.add("clinical.adverse_event", 31, category="seizure", grade=2)
    s.add("pump.infusion_stopped", 31 + MIN, reason="user")
    s.premed(59).add("nursing.supervision", 60, actor_role="nurse")
    s.add("pump.infusion_resumed", 60)
    return (
        "second_seizure_then_restart_fires",
        "R-STOP",
        ["DISCONTINUATION_REQUIRED", "RESTART_AFTER_DISCONTINUATION"],
        "seed",
        s,
    )


@scenario
def one_seizure_then_restart_silent() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category="seizure", grade=2)
    s.add("pump.infusion_stopped", 30 + MIN, reason="user")
    s.premed(59).add("nursing.supervision", 60, actor_role="nurse")
    s.add("pump.infusion_resumed", 60)
    return "one_seizure_then_restart_silent", "R-STOP", [], "seed", s


# -- R-VISIBILITY ----------------------------------------------------------------
def _lost(for_h: float, running: bool = True) -> Scn:
    s = Scn()
    bag = c1_start(s)
    if not running:
        s.complete(20, bag)
    s.add("pump.connection_lost", 21).add("pump.connection_restored", 21 + for_h)
    return s


@scenario
def pump_unreachable_2h_fires() -> Scenario:
    return (
        "pump_unreachable_2h_fires",
        "R-VISIBILITY",
        ["DELIVERY_STATUS_UNKNOWN"],
        "seed",
        _lost(2.5),
    )


@scenario
def pump_back_within_2h_boundary_silent() -> Scenario:
    return "pump_back_within_2h_boundary_silent", "R-VISIBILITY", [], "seed", _lost(2 - MIN)


@scenario
def pump_unreachable_while_stopped_silent() -> Scenario:
    return (
        "pump_unreachable_while_stopped_silent",
        "R-VISIBILITY",
        [],
        "seed",
        _lost(5, running=False),
    )
