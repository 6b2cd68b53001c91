"""Requirement scenarios: the differential review (issue 8), defect classes 1 to 12.

One block per defect class.

Each function is one case registered for ``build.py`` (see its docstring).
"""

from __future__ import annotations

from scn import MIN, Scenario, Scn, c1_start, c1_stepped, mrd, sc, scenario


# -- 1. same second, any order ---------------------------------------------------
@scenario
def same_second_premed_listed_after_start_silent() -> Scenario:
    s = Scn()
    s.cycle_start(1, 0, 9, premed=False, hours=168)
    s.premed(0)
    return sc("same_second_premed_listed_after_start_silent", "R-PREMED", [], s)


@scenario
def same_second_admission_listed_after_start_silent() -> Scenario:
    s = Scn()
    s.cycle_start(1, 0, 9, hospital=False, hours=168)
    s.add("encounter.admitted", 0, setting="inpatient")
    return sc("same_second_admission_listed_after_start_silent", "R-HOSP", [], s)


@scenario
def same_second_supervision_listed_after_cycle3_start_silent() -> Scenario:
    s = Scn()
    s.add("cycle.ordered", -6, cycle=3, phase="consolidation", dose_mcg_day=28)
    s.premed(-1)
    s.bag_start(0, 28, hours=168)
    s.add("nursing.supervision", 0, actor_role="nurse")
    return sc("same_second_supervision_listed_after_cycle3_start_silent", "R-CYCLE-START", [], s)


@scenario
def same_second_discharge_and_stop_boundary_silent() -> Scenario:
    s = Scn()
    bag = c1_start(s, hours=24)
    s.add("encounter.discharged", 24).complete(24, bag)
    return sc("same_second_discharge_and_stop_boundary_silent", "R-HOSP", [], s)


@scenario
def same_second_discharge_at_resume_fires() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("pump.infusion_stopped", 30, reason="user").add("pump.infusion_resumed", 31)
    s.add("encounter.discharged", 31)
    return sc("same_second_discharge_at_resume_fires", "R-HOSP", ["HOSPITALIZATION_REQUIRED"], s)


@scenario
def same_second_grade4_listed_after_stop_fires() -> Scenario:
    s = Scn()
    c1_stepped(s)
    s.add("pump.infusion_stopped", 200, reason="user")
    s.add("clinical.adverse_event", 200, category="crs", grade=4)
    return sc(
        "same_second_grade4_listed_after_stop_fires",
        "R-REACT",
        ["SEVERE_REACTION", "DISCONTINUATION_REQUIRED"],
        s,
    )


# -- 17. an order at the second of the first start --------------------------------
@scenario
def same_second_order_listed_after_first_start_silent() -> Scenario:
    s = Scn()
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1)
    first = s.bag_start(0, 9)
    s.add("cycle.ordered", 0, cycle=1, phase="induction", dose_mcg_day=9)
    last = s.daily_bags(first, 0, 100, 9)
    s.complete(100, last)
    return sc("same_second_order_listed_after_first_start_silent", "R-CYCLE", [], s)


# -- 2. hot swap -----------------------------------------------------------------
def _hot_swap(hours: int = 24, label_rate: float | None = None) -> Scn:
    s = Scn()
    s.cycle_start(1, 0, 9)
    s.bag += 1
    bag = f"B{s.bag}"
    label = {24: 10.0, 48: 5.0}[hours]
    s.add(
        "bag.dispensed",
        22,
        bag_id=bag,
        drug="blinatumomab",
        dose_mcg_day=9,
        duration_h=hours,
        rate_ml_h=label_rate or label,
        volume_ml=240,
        preservative=False,
    )
    s.add("pump.bag_changed", 24, bag_id=bag, previous_bag_id="B1")
    s.add("nursing.bag_change", 24, bag_id=bag, actor_role="nurse", line_flushed=False)
    return s


@scenario
def hot_swap_to_wrong_rate_bag_fires() -> Scenario:
    s = _hot_swap(hours=48)
    s.complete(70, "B2")
    return sc("hot_swap_to_wrong_rate_bag_fires", "R-BAG-RATE", ["RATE_MISMATCH"], s)


@scenario
def hot_swapped_bag_overdue_fires() -> Scenario:
    s = _hot_swap()
    s.complete(24 + 25 + 30 * MIN, "B2")
    return sc("hot_swapped_bag_overdue_fires", "R-BAG-TIME", ["BAG_OVERDUE"], s)


@scenario
def hot_swapped_bag_on_time_boundary_silent() -> Scenario:
    s = _hot_swap()
    s.complete(24 + 25, "B2")
    return sc("hot_swapped_bag_on_time_boundary_silent", "R-BAG-TIME", [], s)


@scenario
def hot_swap_step_up_silent() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add(
        "bag.dispensed",
        160,
        bag_id="B2",
        drug="blinatumomab",
        dose_mcg_day=28,
        duration_h=168,
        rate_ml_h=0.6,
        volume_ml=110,
        preservative=True,
    )
    s.premed(166.5).add("pump.bag_changed", 167, bag_id="B2", previous_bag_id="B1")
    s.add("pump.infusion_stopped", 200, reason="user").add("pump.infusion_resumed", 200 + MIN)
    return sc("hot_swap_step_up_silent", "R-DOSE", [], s)


# -- 3. a cycle that reaches exactly 672 h and continues -------------------------
def _cycle_to_672() -> tuple[Scn, str]:
    s = Scn()
    bag = c1_stepped(s)
    for start in (335, 503, 600):
        s.complete(start, bag)
        bag = s.bag_start(start + MIN, 28, hours=168)
    s.complete(672 + 4 * MIN, bag)  # four one-minute changes: 672 h of infusion exactly
    return s, bag


@scenario
def cycle_exactly_672h_then_continues_fires() -> Scenario:
    s, _ = _cycle_to_672()
    bag = s.bag_start(673, 28, hours=24)
    s.complete(680, bag)
    return sc("cycle_exactly_672h_then_continues_fires", "R-CYCLE", ["CYCLE_TOO_LONG"], s)


@scenario
def cycle_exactly_672h_boundary_silent() -> Scenario:
    s, _ = _cycle_to_672()
    return sc("cycle_exactly_672h_boundary_silent", "R-CYCLE", [], s)


# -- 4. a start while already delivering (its stop was lost) ---------------------
@scenario
def start_while_delivering_begins_ordered_cycle_fires() -> Scenario:
    s = Scn()
    bag = c1_stepped(s)
    s.complete(335, bag).add("encounter.discharged", 300)
    bag = s.bag_start(335 + MIN, 28, hours=168)  # runs on: its completion is lost
    s.add("cycle.ordered", 670, cycle=2, phase="induction", dose_mcg_day=28)
    s.premed(671)
    s.bag_start(672, 28, hours=168)  # cycle 2 starts outside hospital
    s.add("encounter.admitted", 700, setting="inpatient")
    return sc(
        "start_while_delivering_begins_ordered_cycle_fires",
        "R-HOSP",
        ["BAG_OVERDUE", "HOSPITALIZATION_REQUIRED"],
        s,
    )


# -- 5. second episodes ------------------------------------------------------------
@scenario
def rate_wrong_again_after_correction_fires() -> Scenario:
    s = Scn()
    s.cycle_start(1, 0, 9, hours=168)
    s.add("pump.rate_changed", 1, rate_ml_h=1.2).add("pump.rate_changed", 2, rate_ml_h=0.6)
    s.add("pump.rate_changed", 3, rate_ml_h=1.2)
    return sc(
        "rate_wrong_again_after_correction_fires",
        "R-BAG-RATE",
        ["RATE_MISMATCH", "RATE_MISMATCH"],
        s,
    )


@scenario
def rate_other_wrong_value_same_bag_fires() -> Scenario:
    s = Scn()
    s.cycle_start(1, 0, 9, hours=168)
    s.add("pump.rate_changed", 1, rate_ml_h=1.2).add("pump.rate_changed", 2, rate_ml_h=2.4)
    return sc(
        "rate_other_wrong_value_same_bag_fires",
        "R-BAG-RATE",
        ["RATE_MISMATCH", "RATE_MISMATCH"],
        s,
    )


@scenario
def rate_same_wrong_value_repeated_boundary() -> Scenario:
    s = Scn()
    s.cycle_start(1, 0, 9, hours=168)
    s.add("pump.rate_changed", 1, rate_ml_h=1.2).add("pump.rate_changed", 2, rate_ml_h=1.2)
    return sc("rate_same_wrong_value_repeated_boundary", "R-BAG-RATE", ["RATE_MISMATCH"], s)


@scenario
def dose_same_wrong_after_correction_fires() -> Scenario:
    s = mrd()
    s.add("pump.rate_changed", 1, rate_ml_h=0.6, dose_mcg_day=9)
    s.add("pump.rate_changed", 2, rate_ml_h=0.6, dose_mcg_day=28)
    s.add("pump.rate_changed", 3, rate_ml_h=0.6, dose_mcg_day=9)
    return sc(
        "dose_same_wrong_after_correction_fires",
        "R-DOSE",
        ["DOSE_MISMATCH", "DOSE_MISMATCH"],
        s,
        "label-2024",
    )


@scenario
def dose_28_15_28_all_wrong_fires() -> Scenario:
    s = Scn()
    s.cycle_start(1, 0, 28, hours=168)
    s.add("pump.rate_changed", 2, rate_ml_h=0.6, dose_mcg_day=15)
    s.add("pump.rate_changed", 3, rate_ml_h=0.6, dose_mcg_day=28)
    return sc(
        "dose_28_15_28_all_wrong_fires",
        "R-DOSE",
        ["DOSE_MISMATCH", "DOSE_MISMATCH", "DOSE_MISMATCH"],
        s,
    )


# -- 6. a weight recorded mid-course ----------------------------------------------
@scenario
def weight_under_45kg_mid_course_fires() -> Scenario:
    s = mrd(weight=46)
    s.add("patient.weight_recorded", 30, weight_kg=40, bsa_m2=1.3)
    return sc("weight_under_45kg_mid_course_fires", "R-DOSE", ["DOSE_MISMATCH"], s, "label-2024")


@scenario
def weight_still_over_45kg_mid_course_silent() -> Scenario:
    s = mrd(weight=46)
    s.add("patient.weight_recorded", 30, weight_kg=45)
    return sc("weight_still_over_45kg_mid_course_silent", "R-DOSE", [], s, "label-2024")


# -- 7. under 45 kg: caps without BSA, BSA derived from height and weight ---------
@scenario
def dose_child_no_bsa_over_cap_fires() -> Scenario:
    s = Scn(weight=30)
    s.cycle_start(1, 0, 12)
    return sc("dose_child_no_bsa_over_cap_fires", "R-DOSE", ["DOSE_MISMATCH"], s)


@scenario
def dose_child_no_bsa_within_cap_boundary_silent() -> Scenario:
    s = Scn(weight=30)
    s.cycle_start(1, 0, 9.45)
    return sc("dose_child_no_bsa_within_cap_boundary_silent", "R-DOSE", [], s)


@scenario
def dose_child_derived_bsa_fires() -> Scenario:
    s = Scn(weight=30, height_cm=130)  # Mosteller: 1.04 m2, so 5.2 mcg/day
    s.cycle_start(1, 0, 9)
    return sc("dose_child_derived_bsa_fires", "R-DOSE", ["DOSE_MISMATCH"], s)


@scenario
def dose_child_derived_bsa_silent() -> Scenario:
    s = Scn(weight=30, height_cm=130)
    s.cycle_start(1, 0, 5.2)
    return sc("dose_child_derived_bsa_silent", "R-DOSE", [], s)


# -- 8. a preserved bag whatever the flag says ------------------------------------
def _unflagged_bag(hours: int, weight: float = 20) -> Scn:
    s = Scn(weight=weight, bsa_m2=0.8, birth_date="2018-05-01")
    s.add("cycle.ordered", -6, cycle=1, phase="induction")
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=4)
    label = {48: 5.0, 72: 3.3, 168: 0.6}[hours]
    s.bag_start(0, 4.0, hours=hours, label_rate=label, preservative=False)
    return s


@scenario
def preservative_7day_bag_unflagged_20kg_fires() -> Scenario:
    return sc(
        "preservative_7day_bag_unflagged_20kg_fires",
        "R-BAG-PRESERV",
        ["PRESERVATIVE_BAG_UNDERWEIGHT"],
        _unflagged_bag(168),
    )


@scenario
def preservative_72h_bag_unflagged_20kg_boundary() -> Scenario:
    return sc(
        "preservative_72h_bag_unflagged_20kg_boundary",
        "R-BAG-PRESERV",
        ["PRESERVATIVE_BAG_UNDERWEIGHT"],
        _unflagged_bag(72),
    )


@scenario
def preservative_48h_bag_20kg_silent() -> Scenario:
    return sc("preservative_48h_bag_20kg_silent", "R-BAG-PRESERV", [], _unflagged_bag(48))


# -- 9. continued therapy by number -----------------------------------------------
def _continued(gap_days: int) -> Scn:
    s = Scn()
    end = s.whole_cycle(1, 0, 9, hospital_days=9, phase="induction", step={168: 28})
    end = s.whole_cycle(2, end + 14 * 24, 28, hospital_days=2, phase="induction")
    for n in (3, 4, 5, 6):
        end = s.whole_cycle(n, end + 14 * 24, 28, supervise=True)  # cycle 6 says consolidation
    start = end + gap_days * 24
    s.add("cycle.ordered", start - 6, cycle=7, phase="consolidation", dose_mcg_day=28)
    s.premed(start - 1).add("nursing.supervision", start, actor_role="nurse")
    s.bag_start(start, 28)
    return s


@scenario
def continued_cycle_unphased_14_days_fires() -> Scenario:
    return sc(
        "continued_cycle_unphased_14_days_fires",
        "R-CYCLE",
        ["TREATMENT_FREE_INTERVAL_SHORT"],
        _continued(14),
        "label-2024",
    )


@scenario
def continued_cycle_unphased_56_days_boundary_silent() -> Scenario:
    return sc(
        "continued_cycle_unphased_56_days_boundary_silent",
        "R-CYCLE",
        [],
        _continued(56),
        "label-2024",
    )


# -- 10. the restart after a reaction is at the starting dose -----------------------
def _crs_then_restart_at_9(resolved: bool) -> Scn:
    s = Scn()
    c1_stepped(s)
    s.add("clinical.adverse_event", 200, category="crs", grade=3)
    s.add("pump.infusion_stopped", 200 + MIN, reason="user")
    if resolved:
        s.add("clinical.adverse_event", 205, category="crs", grade=0)
    s.premed(209).add("nursing.supervision", 210, actor_role="nurse")
    s.bag_start(210, 9, hours=168)
    return s


@scenario
def restart_at_9_during_open_hold_fires() -> Scenario:
    return sc(
        "restart_at_9_during_open_hold_fires",
        "R-HOLD",
        ["SEVERE_REACTION", "RESTART_DURING_HOLD"],
        _crs_then_restart_at_9(resolved=False),
    )


@scenario
def restart_at_9_after_closed_hold_silent() -> Scenario:
    return sc(
        "restart_at_9_after_closed_hold_silent",
        "R-HOLD",
        ["SEVERE_REACTION"],
        _crs_then_restart_at_9(resolved=True),
    )


# -- 11. only the step from the starting to the full dose is a step-up ----------
@scenario
def dose_jump_28_to_280_is_no_step_up_fires() -> Scenario:
    s = mrd()
    s.add("pump.rate_changed", 30, rate_ml_h=0.6, dose_mcg_day=280)
    return sc(
        "dose_jump_28_to_280_is_no_step_up_fires", "R-DOSE", ["DOSE_MISMATCH"], s, "label-2024"
    )


@scenario
def dose_rise_within_tolerance_is_no_step_up_silent() -> Scenario:
    s = Scn(indication="mrd_positive")
    s.cycle_start(1, 0, 26.6)
    s.add("pump.rate_changed", 20, rate_ml_h=10.0, dose_mcg_day=28)
    return sc("dose_rise_within_tolerance_is_no_step_up_silent", "R-PREMED", [], s, "label-2024")


# -- 12. a child whose full dose is near 9 mcg/day ----------------------------------
@scenario
def dose_child_full_dose_near_9_stepped_silent() -> Scenario:
    s = Scn(weight=12, bsa_m2=0.59, birth_date="2023-01-01")
    first = s.cycle_start(1, 0, 2.95)
    last = s.daily_bags(first, 0, 210, 2.95, step={168: 8.85})
    s.complete(210, last)
    return sc("dose_child_full_dose_near_9_stepped_silent", "R-DOSE", [], s)
