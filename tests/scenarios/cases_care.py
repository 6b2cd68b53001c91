"""Requirement scenarios: care around the infusion.

R-REINIT, R-HOSP, R-CYCLE-START, R-DOSE, R-CYCLE, R-COURSE, R-INTERRUPT, R-PREMED.

Each function is one case registered for ``build.py`` (see its docstring).
"""

from __future__ import annotations

from scn import MIN, Scenario, Scn, c1_start, c1_stepped, scenario


# -- R-REINIT --------------------------------------------------------------------
def _interruption(gap_h: float, supervision_at: float | None = None) -> Scn:
    s = Scn()
    c1_start(s)
    s.add("pump.infusion_stopped", 10, reason="occlusion")
    s.premed(10 + gap_h - 1)
    if supervision_at is not None:
        s.add("nursing.supervision", 10 + gap_h + supervision_at, actor_role="nurse")
    s.add("pump.infusion_resumed", 10 + gap_h).add("encounter.discharged", 9.5)
    s.add("encounter.admitted", 10 + gap_h + 3, setting="inpatient")
    return s


@scenario
def reinit_4h00_unsupervised_fires() -> Scenario:
    return (
        "reinit_4h00_unsupervised_fires",
        "R-REINIT",
        ["HOSPITALIZATION_REQUIRED", "REINITIATION_UNSUPERVISED"],
        "seed",
        _interruption(4),
    )


@scenario
def reinit_3h59_silent() -> Scenario:
    return (
        "reinit_3h59_silent",
        "R-REINIT",
        ["HOSPITALIZATION_REQUIRED"],
        "seed",
        _interruption(4 - MIN),
    )


@scenario
def reinit_supervised_at_1h_boundary_silent() -> Scenario:
    return (
        "reinit_supervised_at_1h_boundary_silent",
        "R-REINIT",
        ["HOSPITALIZATION_REQUIRED"],
        "seed",
        _interruption(4, supervision_at=1.0),
    )


# -- R-HOSP ----------------------------------------------------------------------
def _discharge_at(hours: float, indication: str = "relapsed_refractory") -> Scn:
    s = Scn(indication=indication)
    if indication == "relapsed_refractory":
        c1_stepped(s)
    else:
        c1_start(s, dose=28)
    s.add("encounter.discharged", hours)
    return s


@scenario
def hosp_discharge_day5_fires() -> Scenario:
    return (
        "hosp_discharge_day5_fires",
        "R-HOSP",
        ["HOSPITALIZATION_REQUIRED"],
        "seed",
        _discharge_at(100),
    )


@scenario
def hosp_discharge_after_9_days_boundary_silent() -> Scenario:
    return "hosp_discharge_after_9_days_boundary_silent", "R-HOSP", [], "seed", _discharge_at(216)


@scenario
def hosp_mrd_discharge_day3_fires() -> Scenario:
    return (
        "hosp_mrd_discharge_day3_fires",
        "R-HOSP",
        ["HOSPITALIZATION_REQUIRED"],
        "seed",
        _discharge_at(71, "mrd_positive"),
    )


# -- R-CYCLE-START ---------------------------------------------------------------
def _cycle3(supervision_at: float | None) -> Scn:
    s = Scn()
    end = s.whole_cycle(1, 0, 9, hospital_days=9, phase="induction", step={168: 28})
    end = s.whole_cycle(2, end + 14 * 24, 28, hospital_days=2, phase="induction")
    start = end + 14 * 24
    s.add("cycle.ordered", start - 6, cycle=3, phase="consolidation", dose_mcg_day=28)
    s.premed(start - 1)
    if supervision_at is not None:
        s.add("nursing.supervision", start + supervision_at, actor_role="nurse")
    bag = s.bag_start(start, 28)
    s.complete(start + 24, bag)
    return s


@scenario
def cycle3_start_unsupervised_fires() -> Scenario:
    return (
        "cycle3_start_unsupervised_fires",
        "R-CYCLE-START",
        ["CYCLE_START_UNSUPERVISED"],
        "seed",
        _cycle3(None),
    )


@scenario
def cycle3_start_supervised_silent() -> Scenario:
    return "cycle3_start_supervised_silent", "R-CYCLE-START", [], "seed", _cycle3(0.0)


@scenario
def cycle3_supervision_1h01_after_boundary_fires() -> Scenario:
    return (
        "cycle3_supervision_1h01_after_boundary_fires",
        "R-CYCLE-START",
        ["CYCLE_START_UNSUPERVISED"],
        "seed",
        _cycle3(1 + MIN),
    )


# -- R-DOSE ----------------------------------------------------------------------
def _step_up_at(hours: float) -> Scn:
    """A 7-day bag at 9 mcg/day, then the step-up bag; infusion hours = calendar hours."""
    s = Scn()
    bag = c1_start(s)
    if hours > 168:
        s.complete(168, bag)
        bag = s.bag_start(168 + MIN, 9, hours=48)
        hours_on = hours + MIN
    else:
        hours_on = hours
    s.complete(hours_on, bag).premed(hours_on - 0.5)
    s.bag_start(hours_on + MIN, 28, hours=168)
    return s


@scenario
def dose_28_on_day3_fires() -> Scenario:
    s = Scn()
    c1_start(s, dose=28)
    return "dose_28_on_day3_fires", "R-DOSE", ["DOSE_MISMATCH"], "seed", s


@scenario
def dose_step_up_12h_early_boundary_silent() -> Scenario:
    return ("dose_step_up_12h_early_boundary_silent", "R-DOSE", [], "seed", _step_up_at(156))


@scenario
def dose_step_up_too_early_fires() -> Scenario:
    return (
        "dose_step_up_too_early_fires",
        "R-DOSE",
        ["DOSE_MISMATCH"],
        "seed",
        _step_up_at(156 - MIN),
    )


@scenario
def dose_step_up_late_fires() -> Scenario:
    return "dose_step_up_late_fires", "R-DOSE", ["DOSE_MISMATCH"], "seed", _step_up_at(200)


@scenario
def dose_child_dosed_as_adult_fires() -> Scenario:
    s = Scn(weight=20, bsa_m2=0.8, birth_date="2018-05-01")
    s.add("cycle.ordered", -6, cycle=1, phase="induction")
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=4)
    s.bag_start(0, 9)
    return "dose_child_dosed_as_adult_fires", "R-DOSE", ["DOSE_MISMATCH"], "seed", s


@scenario
def dose_child_by_bsa_silent() -> Scenario:
    s = Scn(weight=20, bsa_m2=0.8, birth_date="2018-05-01")
    s.add("cycle.ordered", -6, cycle=1, phase="induction")
    s.add("encounter.admitted", -2, setting="inpatient").premed(-1, mg=4)
    s.bag_start(0, 4)
    return "dose_child_by_bsa_silent", "R-DOSE", [], "seed", s


@scenario
def dose_mrd_at_9_underdose_fires() -> Scenario:
    s = Scn(indication="mrd_positive")
    c1_start(s, dose=9)
    return "dose_mrd_at_9_underdose_fires", "R-DOSE", ["DOSE_MISMATCH"], "seed", s


# -- R-CYCLE ---------------------------------------------------------------------
def _two_cycles(gap_days: float) -> Scn:
    s = Scn()
    end = s.whole_cycle(1, 0, 9, hospital_days=9, phase="induction", step={168: 28})
    start = end + gap_days * 24
    s.add("cycle.ordered", start - 6, cycle=2, phase="induction", dose_mcg_day=28)
    s.add("encounter.admitted", start - 2, setting="inpatient").premed(start - 1)
    s.bag_start(start, 28)
    return s


@scenario
def tfi_13_days_fires() -> Scenario:
    return (
        "tfi_13_days_fires",
        "R-CYCLE",
        ["TREATMENT_FREE_INTERVAL_SHORT"],
        "seed",
        _two_cycles(13),
    )


@scenario
def tfi_14_days_boundary_silent() -> Scenario:
    return "tfi_14_days_boundary_silent", "R-CYCLE", [], "seed", _two_cycles(14)


@scenario
def cycle_passes_28_days_fires() -> Scenario:
    s = Scn()
    first = s.cycle_start(1, 0, 9)
    s.add("encounter.discharged", 9 * 24 + 1)
    last = s.daily_bags(first, 0, 30 * 24, 9, step={168: 28})
    s.complete(30 * 24, last)
    return "cycle_passes_28_days_fires", "R-CYCLE", ["CYCLE_TOO_LONG"], "seed", s


# -- R-COURSE --------------------------------------------------------------------
def _six_cycles(indication: str = "relapsed_refractory") -> Scn:
    s = Scn(indication=indication)
    rr = indication == "relapsed_refractory"
    end = s.whole_cycle(
        1,
        0,
        9 if rr else 28,
        hospital_days=9 if rr else 3,
        phase="induction",
        step={168: 28} if rr else None,
    )
    end = s.whole_cycle(2, end + 14 * 24, 28, hospital_days=2, phase="induction")
    for n in (3, 4, 5):
        end = s.whole_cycle(n, end + 14 * 24, 28, supervise=True)
    start = end + 14 * 24
    s.add("cycle.ordered", start - 6, cycle=6, phase="continued", dose_mcg_day=28)
    s.premed(start - 1).add("nursing.supervision", start, actor_role="nurse")
    s.bag_start(start, 28)
    return s


@scenario
def course_cycle6_seed_fires() -> Scenario:
    return ("course_cycle6_seed_fires", "R-COURSE", ["MAX_CYCLES_EXCEEDED"], "seed", _six_cycles())


@scenario
def course_cycle6_label_2024_silent() -> Scenario:
    return "course_cycle6_label_2024_silent", "R-COURSE", [], "label-2024", _six_cycles()


@scenario
def course_mrd_cycle5_label_2024_fires() -> Scenario:
    s = Scn(indication="mrd_positive")
    end = s.whole_cycle(1, 0, 28, hospital_days=3, phase="consolidation")
    end = s.whole_cycle(2, end + 14 * 24, 28, hospital_days=2)
    for n in (3, 4):
        end = s.whole_cycle(n, end + 14 * 24, 28, supervise=True)
    start = end + 14 * 24
    s.add("cycle.ordered", start - 6, cycle=5, phase="consolidation", dose_mcg_day=28)
    s.premed(start - 1).add("nursing.supervision", start, actor_role="nurse")
    s.bag_start(start, 28)
    return (
        "course_mrd_cycle5_label_2024_fires",
        "R-COURSE",
        ["MAX_CYCLES_EXCEEDED"],
        "label-2024",
        s,
    )


# -- R-INTERRUPT -----------------------------------------------------------------
def _long_stop(days: float) -> Scn:
    s = Scn()
    bag = c1_start(s)
    s.add("pump.infusion_stopped", 20, reason="user")
    back = 20 + days * 24
    s.premed(back - 1).add("nursing.supervision", back, actor_role="nurse")
    s.complete(back - 1, bag)
    s.bag_start(back, 9)
    return s


@scenario
def interruption_over_7_days_fires() -> Scenario:
    return (
        "interruption_over_7_days_fires",
        "R-INTERRUPT",
        ["NEW_CYCLE_REQUIRED"],
        "seed",
        _long_stop(7 + MIN / 24),
    )


@scenario
def interruption_exactly_7_days_boundary_silent() -> Scenario:
    return "interruption_exactly_7_days_boundary_silent", "R-INTERRUPT", [], "seed", _long_stop(7)


@scenario
def resume_after_8_days_fires() -> Scenario:
    s = Scn()
    c1_start(s)
    s.add("pump.infusion_stopped", 20, reason="user")
    s.premed(20 + 8 * 24 - 1).add("nursing.supervision", 20 + 8 * 24, actor_role="nurse")
    s.add("pump.infusion_resumed", 20 + 8 * 24)
    return (
        "resume_after_8_days_fires",
        "R-INTERRUPT",
        ["NEW_CYCLE_REQUIRED", "BAG_OVERDUE"],
        "seed",
        s,
    )


# -- R-PREMED --------------------------------------------------------------------
def _premed(mg: float | None, before_h: float = 1) -> Scn:
    s = Scn()
    s.add("cycle.ordered", -6, cycle=1, phase="induction", dose_mcg_day=9)
    s.add("encounter.admitted", -2, setting="inpatient")
    if mg is not None:
        s.premed(-before_h, mg=mg)
    s.bag_start(0, 9)
    return s


@scenario
def premed_missing_at_cycle_start_fires() -> Scenario:
    return (
        "premed_missing_at_cycle_start_fires",
        "R-PREMED",
        ["PREMEDICATION_MISSING"],
        "seed",
        _premed(None),
    )


@scenario
def premed_19mg_within_tolerance_boundary_silent() -> Scenario:
    return "premed_19mg_within_tolerance_boundary_silent", "R-PREMED", [], "seed", _premed(19)


@scenario
def premed_4h_before_boundary_silent() -> Scenario:
    return "premed_4h_before_boundary_silent", "R-PREMED", [], "seed", _premed(20, before_h=4)


@scenario
def premed_4h01_before_fires() -> Scenario:
    return (
        "premed_4h01_before_fires",
        "R-PREMED",
        ["PREMEDICATION_MISSING"],
        "seed",
        _premed(20, before_h=4 + MIN),
    )


@scenario
def premed_missing_at_step_up_fires() -> Scenario:
    s = Scn()
    bag = c1_start(s)
    s.complete(167, bag).bag_start(167 + MIN, 28, hours=168)
    return ("premed_missing_at_step_up_fires", "R-PREMED", ["PREMEDICATION_MISSING"], "seed", s)
