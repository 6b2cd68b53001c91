"""Issue 8's damaged-but-correct situations appear in the generated stream, as the spec reads them.

These check the stream only (no engine): what a population must contain so
the engine is exercised on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pumpguard.simulations.generator import generate
from pumpguard.simulations.montecarlo import generate_population
from pumpguard.simulations.scenario import Scenario, catalogue_dir, load_scenario

Event = dict[str, Any]
_STARTS = ("pump.infusion_started", "pump.infusion_resumed")
_STOPS = ("pump.infusion_stopped", "pump.infusion_completed")


def _events(scenario: Scenario | str) -> list[Event]:
    if isinstance(scenario, str):
        scenario = load_scenario(catalogue_dir() / f"{scenario}.yaml")
    return [json.loads(line) for line in generate(scenario).lines]


def _t(e: Event) -> datetime:
    return datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00"))


def _running(events: list[Event]) -> Iterator[tuple[bool, Event]]:
    """Each event with whether the drug ran just before it (as the stream says)."""
    running = False
    for e in events:
        yield running, e
        if e["type"] in _STARTS:
            running = True
        elif e["type"] in _STOPS:
            running = False


def _starts_with_doses(events: list[Event]) -> list[tuple[datetime, float]]:
    return [(_t(e), float(e["dose_mcg_day"])) for e in events if e["type"] == _STARTS[0]]


class TestPumpFeed:
    def test_hot_swap_changes_the_bag_while_running(self):
        """pump.bag_changed with no stop before it, and no start after it."""
        events = _events("30_clean_hot_swaps")
        hot = [e for running, e in _running(events) if running and e["type"] == "pump.bag_changed"]
        assert len(hot) > 5

    def test_lost_stop_gives_a_start_while_delivering(self):
        events = _events("31_clean_lost_stops_and_orders")
        doubled = [e for running, e in _running(events) if running and e["type"] == _STARTS[0]]
        assert doubled

    def test_lost_orders_leave_the_cycles_to_inference(self):
        events = _events("31_clean_lost_stops_and_orders")
        assert not [e for e in events if e["type"] == "cycle.ordered"]
        gaps = [
            b - a
            for (a, _), (b, _) in zip(
                _starts_with_doses(events), _starts_with_doses(events)[1:], strict=False
            )
        ]
        assert sum(1 for g in gaps if g > timedelta(days=14)) == 2  # three cycles

    def test_preserved_bags_with_and_without_the_flag(self):
        bags = [
            e for e in _events("34_clean_child_preserved_unflagged") if e["type"] == "bag.dispensed"
        ]
        preserved = [b for b in bags if b["duration_h"] >= 72]
        assert {b.get("preservative") for b in preserved} == {True, None}


class TestSameSecond:
    @pytest.mark.parametrize(
        "kind",
        ["medication.administered", "cycle.ordered", "encounter.admitted", "nursing.supervision"],
    )
    def test_documentation_at_the_second_of_a_start_both_orders(self, kind: str):
        """Each kind is written at a start's very second, listed before it and after it."""
        gen = generate_population(40, 0.0, seed=2)
        events = [json.loads(line) for line in gen.lines]
        starts = {
            (e["patient_id"], e["ts"]): i for i, e in enumerate(events) if e["type"] in _STARTS
        }
        orders = set()
        for i, e in enumerate(events):
            j = starts.get((e["patient_id"], e["ts"]))
            if e["type"] == kind and j is not None:
                orders.add("before" if i < j else "after")
        assert orders == {"before", "after"}


class TestCourse:
    def test_weights_recorded_while_running_stay_in_the_band(self):
        events = _events("33_clean_weights_mid_course")
        weights = [
            e
            for running, e in _running(events)
            if running and e["type"] == "patient.weight_recorded"
        ]
        assert len(weights) == 4
        assert all(w["weight_kg"] < 45 for w in weights)

    def test_interruptions_from_minutes_to_a_new_cycle(self):
        """40 min and 4 h resumed, 3 days on a new bag, 9 days: cycle 3 is ordered then."""
        events = _events("37_clean_interruptions")
        pauses, stop = [], None
        for e in events:
            if e["type"] in _STOPS:
                stop = _t(e)
            elif e["type"] in _STARTS and stop is not None:
                pauses.append((_t(e) - stop).total_seconds() / 3600)
                stop = None
        assert any(0.6 < p < 0.7 for p in pauses)
        assert any(p == pytest.approx(4.0, abs=0.1) for p in pauses)
        assert any(71 < p < 73 for p in pauses)
        assert any(215 < p < 217 for p in pauses)
        assert [e["cycle"] for e in events if e["type"] == "cycle.ordered"] == [1, 2, 3, 4]
        # two treatment-free intervals (cycles 1-2, 3-4); the 9 days are none: cycle 3 starts
        assert sum(1 for p in pauses if p >= 14 * 24) == 2

    def test_continued_therapy_waits_56_days(self):
        events = _events("38_clean_continued_therapy")
        orders = [e for e in events if e["type"] == "cycle.ordered"]
        assert [o["phase"] for o in orders][5:] == ["consolidation"] * 3  # mislabelled
        firsts: dict[int, datetime] = {}
        lasts: dict[int, datetime] = {}
        cycle = 0
        for e in events:
            if e["type"] == "cycle.ordered":
                cycle = int(e["cycle"])
            elif e["type"] in _STARTS:
                firsts.setdefault(cycle, _t(e))
            elif e["type"] in _STOPS:
                lasts[cycle] = _t(e)
        assert firsts[7] - lasts[6] >= timedelta(days=56)
        assert timedelta(days=14) <= firsts[6] - lasts[5] < timedelta(days=20)


class TestReactionHolds:
    @pytest.mark.parametrize(
        ("scenario", "category", "closing"),
        [
            ("35_clean_holds_crs_neuro_seizure", "crs", 0),
            ("35_clean_holds_crs_neuro_seizure", "neurotoxicity", 1),
            ("35_clean_holds_crs_neuro_seizure", "seizure", 0),
            ("36_clean_holds_infection_tls_other", "infection", 1),
            ("36_clean_holds_infection_tls_other", "tumor_lysis", 1),
            ("36_clean_holds_infection_tls_other", "other", 1),
        ],
    )
    def test_hold_closes_by_the_book_and_restarts_at_the_start_dose(
        self, scenario: str, category: str, closing: int
    ):
        """Stopped, then grade 3; closed (CRS at 0, seizure ended at 0, others at 1); neuro
        and seizure wait 3 days; restart at 9 mcg/day, full dose after 7 days of infusion."""
        events = _events(scenario)
        notes = [e for e in events if e["type"] == "clinical.adverse_event"]
        mine = [e for e in notes if e["category"] == category]
        onset = next(e for e in mine if e["grade"] == 3)
        closed = next(e for e in mine if e["grade"] <= closing and _t(e) > _t(onset))
        running_at_onset = {id(e): r for r, e in _running(events)}[id(onset)]
        assert not running_at_onset  # documented after the stop: no SEVERE_REACTION owed
        restart = next(e for e in events if e["type"] == _STARTS[0] and _t(e) > _t(closed))
        wait = _t(restart) - _t(closed)
        if category in ("neurotoxicity", "seizure"):
            assert wait >= timedelta(hours=72)
        assert float(restart["dose_mcg_day"]) == 9.0
        later = [d for t, d in _starts_with_doses(events) if t > _t(restart)]
        assert 28.0 in later
        if category == "seizure":
            assert [e["grade"] for e in mine] == [3, 0]  # one seizure, not two


class TestPremedication:
    def _premed_cycles(self, scenario: str) -> list[int]:
        events = _events(scenario)
        cycle, out = 0, []
        for e in events:
            if e["type"] == "cycle.ordered":
                cycle = int(e["cycle"])
            elif e["type"] == "medication.administered":
                out.append(cycle)
        return out

    def test_children_are_premedicated_in_cycle_1_only(self):
        cycles = self._premed_cycles("39_clean_child_premed_cycle1_only")
        assert cycles
        assert set(cycles) == {1}
        assert len(cycles) == 3  # first dose, step-up, the 6 h restart

    def test_mrd_adults_are_premedicated_before_each_cycle_only(self):
        cycles = self._premed_cycles("36_clean_holds_infection_tls_other")
        assert cycles == [1, 2, 3]
