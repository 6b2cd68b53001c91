"""Requirement scenarios: the differential review (issue 8), defect classes 13 to 19.

And the cases found by an independent review of the fixes.

Each function is one case registered for ``build.py`` (see its docstring).
"""

from __future__ import annotations

from scn import MIN, Scenario, Scn, c1_start, c1_stepped, mrd, neuro_hold_then_restart, sc, scenario


# -- 13. consolidation course maximum ------------------------------------------
def _consolidation_cycle(n: int) -> Scn:
    s = Scn(indication="consolidation")
    s.add("cycle.ordered", -6, cycle=n, phase="consolidation", dose_mcg_day=28)
    s.premed(-1).add("nursing.supervision", 0, actor_role="nurse")
    s.bag_start(0, 28, hours=168)
    return s


@scenario
def course_consolidation_cycle5_label_2024_fires() -> Scenario:
    return sc(
        "course_consolidation_cycle5_label_2024_fires",
        "R-COURSE",
        ["MAX_CYCLES_EXCEEDED"],
        _consolidation_cycle(5),
        "label-2024",
    )


@scenario
def course_consolidation_cycle4_label_2024_boundary_silent() -> Scenario:
    return sc(
        "course_consolidation_cycle4_label_2024_boundary_silent",
        "R-COURSE",
        [],
        _consolidation_cycle(4),
        "label-2024",
    )


# -- 14. a step-up forgotten at a bag change --------------------------------------
def _daily_back_to_back(step_at: float | None) -> Scn:
    """Cycle 1 at 9 mcg/day; at exactly 192 h of infusion a bag is changed in the same second."""
    s = Scn()
    bag = c1_start(s)
    s.complete(168, bag)
    bag = s.bag_start(168, 9)
    s.complete(192, bag)
    if step_at is not None:
        s.premed(191)
    bag = s.bag_start(192, 9 if step_at is None else 28, hours=168)
    s.complete(300, bag)
    return s


@scenario
def step_up_forgotten_at_bag_change_fires() -> Scenario:
    return sc(
        "step_up_forgotten_at_bag_change_fires",
        "R-DOSE",
        ["DOSE_MISMATCH"],
        _daily_back_to_back(None),
    )


@scenario
def step_up_at_bag_change_silent() -> Scenario:
    return sc("step_up_at_bag_change_silent", "R-DOSE", [], _daily_back_to_back(168))


# -- 15. neurotoxicity holds count from the first grade 1 or less ----------------------
@scenario
def neuro_hold_grade0_after_grade1_keeps_count_silent() -> Scenario:
    return sc(
        "neuro_hold_grade0_after_grade1_keeps_count_silent",
        "R-HOLD",
        ["SEVERE_REACTION"],
        neuro_hold_then_restart([(210, 1), (250, 0)], restart_h=282),
    )


@scenario
def neuro_hold_grade2_between_restarts_count_fires() -> Scenario:
    return sc(
        "neuro_hold_grade2_between_restarts_count_fires",
        "R-HOLD",
        ["SEVERE_REACTION", "RESTART_DURING_HOLD"],
        neuro_hold_then_restart([(210, 1), (250, 2), (260, 1)], restart_h=282),
    )


# -- 16. a child's premedication uses the derived BSA ------------------------------
@scenario
def premed_child_derived_bsa_silent() -> Scenario:
    s = Scn(weight=20, height_cm=110, birth_date="2019-01-01")  # 0.78 m2: 3.9 mg
    s.add("cycle.ordered", -6, cycle=1, phase="induction", dose_mcg_day=3.9)
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=4)
    s.bag_start(0, 3.9)
    return sc("premed_child_derived_bsa_silent", "R-PREMED", [], s)


@scenario
def premed_child_derived_bsa_short_fires() -> Scenario:
    s = Scn(weight=20, height_cm=110, birth_date="2019-01-01")
    s.add("cycle.ordered", -6, cycle=1, phase="induction", dose_mcg_day=3.9)
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=3)
    s.bag_start(0, 3.9)
    return sc("premed_child_derived_bsa_short_fires", "R-PREMED", ["PREMEDICATION_MISSING"], s)


# -- 18. the label's discontinuation rules -----------------------------------------
@scenario
def neuro_grade3_at_starting_dose_fires() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category="neurotoxicity", grade=3)
    s.add("pump.infusion_stopped", 30 + MIN, reason="user")
    return sc(
        "neuro_grade3_at_starting_dose_fires",
        "R-STOP",
        ["SEVERE_REACTION", "DISCONTINUATION_REQUIRED"],
        s,
    )


@scenario
def neuro_grade3_during_interruption_silent() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("pump.infusion_stopped", 30, reason="user")
    s.add("clinical.adverse_event", 31, category="neurotoxicity", grade=3)
    s.add("clinical.adverse_event", 40, category="neurotoxicity", grade=1)
    return sc("neuro_grade3_during_interruption_silent", "R-STOP", [], s)


def _neuro_unresolved(back_h: float) -> Scn:
    s = Scn()
    c1_stepped(s)
    s.add("clinical.adverse_event", 200, category="neurotoxicity", grade=3)
    s.add("pump.infusion_stopped", 200 + MIN, reason="user")
    s.add("clinical.adverse_event", 250, category="neurotoxicity", grade=2)
    s.add("clinical.adverse_event", back_h, category="neurotoxicity", grade=1)
    return s


@scenario
def neuro_grade3_unresolved_7_days_fires() -> Scenario:
    return sc(
        "neuro_grade3_unresolved_7_days_fires",
        "R-STOP",
        ["SEVERE_REACTION", "DISCONTINUATION_REQUIRED"],
        _neuro_unresolved(368 + MIN),
    )


@scenario
def neuro_grade3_back_at_exactly_7_days_boundary_silent() -> Scenario:
    return sc(
        "neuro_grade3_back_at_exactly_7_days_boundary_silent",
        "R-STOP",
        ["SEVERE_REACTION"],
        _neuro_unresolved(368),
    )


def _infection(back: tuple[float, int] | None, restart_h: float | None) -> Scn:
    s = Scn()
    c1_start(s)
    s.add("clinical.adverse_event", 30, category="infection", grade=3)
    s.add("pump.infusion_stopped", 30 + MIN, reason="user")
    if back is not None:
        s.add("clinical.adverse_event", back[0], category="infection", grade=back[1])
    if restart_h is not None:
        s.premed(restart_h - 1).add("nursing.supervision", restart_h, actor_role="nurse")
        s.add("pump.infusion_resumed", restart_h)
    return s


@scenario
def infection_unresolved_14_days_fires() -> Scenario:
    return sc(
        "infection_unresolved_14_days_fires",
        "R-STOP",
        ["SEVERE_REACTION", "DISCONTINUATION_REQUIRED"],
        _infection((30 + 14 * 24 + MIN, 2), None),
    )


@scenario
def infection_back_to_grade1_then_restart_silent() -> Scenario:
    return sc(
        "infection_back_to_grade1_then_restart_silent",
        "R-HOLD",
        ["SEVERE_REACTION"],
        _infection((40, 1), 50),
    )


@scenario
def restart_after_unresolved_infection_fires() -> Scenario:
    return sc(
        "restart_after_unresolved_infection_fires",
        "R-STOP",
        [
            "SEVERE_REACTION",
            "DISCONTINUATION_REQUIRED",
            "NEW_CYCLE_REQUIRED",
            "BAG_OVERDUE",
            "RESTART_AFTER_DISCONTINUATION",
        ],
        _infection(None, 30 + 15 * 24),
    )


# -- 19. premedication by indication and age -------------------------------------
@scenario
def premed_child_cycle2_not_required_silent() -> Scenario:
    s = Scn(weight=20, bsa_m2=0.8, birth_date="2019-01-01")
    s.cycle_start(2, 0, 12, premed=False)
    return sc("premed_child_cycle2_not_required_silent", "R-PREMED", [], s)


@scenario
def premed_mrd_restart_not_required_silent() -> Scenario:
    s = mrd()
    s.add("pump.infusion_stopped", 5, reason="user")
    s.add("nursing.supervision", 10, actor_role="nurse").add("pump.infusion_resumed", 10)
    return sc("premed_mrd_restart_not_required_silent", "R-PREMED", [], s, "label-2024")


@scenario
def premed_mrd_cycle_start_missing_fires() -> Scenario:
    s = Scn(indication="mrd_positive")
    s.cycle_start(1, 0, 28, premed=False)
    return sc(
        "premed_mrd_cycle_start_missing_fires",
        "R-PREMED",
        ["PREMEDICATION_MISSING"],
        s,
        "label-2024",
    )


# -- found by an independent review of the fixes ----------------------------------
@scenario
def neuro_hold_not_closed_by_a_seizure_end_fires() -> Scenario:
    s = Scn()
    s.cycle_start(2, 0, 28, hours=168)
    s.add("clinical.adverse_event", 100, category="neurotoxicity", grade=3)
    s.add("pump.infusion_stopped", 100, reason="user")
    s.add("clinical.adverse_event", 101, category="seizure", grade=3)
    s.add("clinical.adverse_event", 101.5, category="seizure", grade=0)  # that seizure ended
    s.premed(179).add("nursing.supervision", 180, actor_role="nurse")
    s.bag_start(180, 9, hours=168)
    s.add("pump.infusion_stopped", 300, reason="user")
    return sc(
        "neuro_hold_not_closed_by_a_seizure_end_fires",
        "R-HOLD",
        ["SEVERE_REACTION", "RESTART_DURING_HOLD", "DISCONTINUATION_REQUIRED"],
        s,
    )


@scenario
def lost_stop_then_cycle_on_a_new_pump_fires() -> Scenario:
    s = Scn()
    s.add(
        "pump.registered",
        -8,
        pump_id="PUMP-2",
        device_kind="ambulatory",
        lockable=True,
        alarms=True,
    )
    s.cycle_start(2, 0, 28, hours=168)  # its last stop is lost
    s.add("encounter.discharged", 60)
    s.add("cycle.ordered", 1000, cycle=3, phase="consolidation", dose_mcg_day=28)
    s.premed(1007).add("nursing.supervision", 1007.5, actor_role="nurse")
    s.add(
        "bag.dispensed",
        1000,
        bag_id="C1",
        drug="blinatumomab",
        dose_mcg_day=28,
        duration_h=168,
        rate_ml_h=0.6,
        volume_ml=110,
        preservative=True,
    )
    s.add(
        "pump.infusion_started",
        1008,
        pump_id="PUMP-2",
        drug="blinatumomab",
        rate_ml_h=0.6,
        dose_mcg_day=28,
        bag_id="C1",
    )
    s.add("pump.infusion_stopped", 1100, pump_id="PUMP-2", reason="user")
    s.add("pump.infusion_resumed", 1106, pump_id="PUMP-2")  # 6 h at home: no premed, no nurse
    s.add("pump.infusion_stopped", 1150, pump_id="PUMP-2", reason="user")
    return sc(
        "lost_stop_then_cycle_on_a_new_pump_fires",
        "R-REINIT",
        [
            "BAG_OVERDUE",
            "CYCLE_TOO_LONG",
            "PREMEDICATION_MISSING",
            "REINITIATION_UNSUPERVISED",
        ],
        s,
    )


@scenario
def bag_changed_while_stopped_then_resumed_overdue_fires() -> Scenario:
    s = Scn()
    bag = s.cycle_start(1, 0, 9)
    s.add(
        "bag.dispensed",
        20,
        bag_id="B2",
        drug="blinatumomab",
        dose_mcg_day=9,
        duration_h=24,
        rate_ml_h=10.0,
        volume_ml=240,
        preservative=False,
    )
    s.add("pump.infusion_stopped", 24, reason="user")
    s.add("pump.bag_changed", 24, bag_id="B2", previous_bag_id=bag)
    s.add("pump.infusion_resumed", 24.05)
    s.add("pump.infusion_stopped", 72, reason="user")
    return sc(
        "bag_changed_while_stopped_then_resumed_overdue_fires",
        "R-BAG-TIME",
        ["BAG_OVERDUE"],
        s,
    )


def _crs_without_interruption(dose: float, cycle: int) -> Scn:
    s = Scn()
    s.cycle_start(cycle, 0, dose, hours=168)
    s.add("clinical.adverse_event", 100, category="crs", grade=3)
    s.add("clinical.adverse_event", 104, category="crs", grade=0)
    s.add(
        "bag.dispensed",
        115,
        bag_id="B2",
        drug="blinatumomab",
        dose_mcg_day=dose,
        duration_h=168,
        rate_ml_h=0.6,
        volume_ml=110,
        preservative=True,
    )
    s.add("pump.bag_changed", 120, bag_id="B2", previous_bag_id="B1")  # hot swap
    s.add("pump.infusion_stopped", 250, reason="user")
    return s


@scenario
def crs_without_interruption_step_up_still_due_fires() -> Scenario:
    return sc(
        "crs_without_interruption_step_up_still_due_fires",
        "R-DOSE",
        ["SEVERE_REACTION", "DOSE_MISMATCH"],
        _crs_without_interruption(9, 1),
    )


@scenario
def crs_without_interruption_hot_swap_at_full_dose_silent() -> Scenario:
    return sc(
        "crs_without_interruption_hot_swap_at_full_dose_silent",
        "R-HOLD",
        ["SEVERE_REACTION"],
        _crs_without_interruption(28, 2),
    )


def _child_no_bsa() -> Scn:
    s = Scn(weight=12, birth_date="2022-01-01")  # no BSA, no height
    s.add("cycle.ordered", -6, cycle=1, phase="induction")
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=3)
    return s


@scenario
def dose_child_no_bsa_stepped_silent() -> Scenario:
    s = _child_no_bsa()
    bag = s.bag_start(0, 2.95, hours=24)
    s.complete(24, bag)
    bag = s.bag_start(24, 2.95, hours=24)
    s.complete(48, bag)
    s.premed(167, mg=3)
    bag = s.bag_start(48, 8.85, hours=24)
    s.complete(72, bag)
    return sc("dose_child_no_bsa_stepped_silent", "R-DOSE", [], s, "label-2024")


@scenario
def neuro_grade3_child_no_bsa_not_decided_at_onset_boundary() -> Scenario:
    s = _child_no_bsa()
    s.bag_start(0, 8.85, hours=24)
    s.add("clinical.adverse_event", 10, category="neurotoxicity", grade=3)
    s.add("pump.infusion_stopped", 10, reason="user")
    s.add("clinical.adverse_event", 20, category="neurotoxicity", grade=1)
    return sc(
        "neuro_grade3_child_no_bsa_not_decided_at_onset_boundary",
        "R-STOP",
        ["SEVERE_REACTION"],
        s,
        "label-2024",
    )


@scenario
def premed_child_no_bsa_some_given_silent() -> Scenario:
    s = _child_no_bsa()
    s.bag_start(0, 2.95, hours=24)
    return sc("premed_child_no_bsa_some_given_silent", "R-PREMED", [], s, "label-2024")


@scenario
def premed_child_no_bsa_none_given_fires() -> Scenario:
    s = Scn(weight=12, birth_date="2022-01-01")
    s.add("cycle.ordered", -6, cycle=1, phase="induction")
    s.add("encounter.admitted", -2, setting="inpatient")
    s.bag_start(0, 2.95, hours=24)
    return sc(
        "premed_child_no_bsa_none_given_fires",
        "R-PREMED",
        ["PREMEDICATION_MISSING"],
        s,
        "label-2024",
    )
