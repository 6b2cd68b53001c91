"""B. Braun SpacePlus as it really sends: serials in OBX-18.1, alarm ids in OBR-29.2, notes.

The fixtures in tests/fixtures/bbraun are pumpguard's own, in the shapes of
public captures (see SOURCES.md there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pumpguard.adapters.base import Reject
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2 import Hl7Source
from pumpguard.engine.events import Event

BBRAUN = Path(__file__).resolve().parent.parent / "fixtures" / "bbraun"
BOUND = AdapterConfig.from_yaml(BBRAUN / "bindings.yaml")


def read(name: str, config: AdapterConfig | None = BOUND) -> list[Event | Reject]:
    return list(Hl7Source(BBRAUN / name, config=config))


def events(records: list[Event | Reject]) -> list[Event]:
    return [r for r in records if not isinstance(r, Reject)]


def warnings(records: list[Event | Reject]) -> list[Reject]:
    return [r for r in records if isinstance(r, Reject) and r.level == "warning"]


class TestPumpIdentity:
    """Pumps sharing B. Braun's placeholder EUI-64 stay apart by their serials."""

    def test_four_pumps_in_one_file_stay_four_pumps(self) -> None:
        starts = [e for e in events(read("four_pumps.hl7")) if e.type == "pump.infusion_started"]
        assert [e.pump_id for e in starts] == ["P3101", "P3102", "I5201", "I5202"]

    def test_binding_by_serial_binds(self) -> None:
        starts = [e for e in events(read("four_pumps.hl7")) if e.type == "pump.infusion_started"]
        assert [e.patient_id for e in starts] == ["pt-101", "pt-102", "pt-201", "pt-202"]

    def test_power_off_of_one_pump_stops_that_pump_only(self) -> None:
        stops = [e for e in events(read("four_pumps.hl7")) if e.type == "pump.infusion_stopped"]
        assert [(e.pump_id, e.patient_id, e.reason) for e in stops] == [
            ("I5201", "pt-201", "power")
        ]

    def test_unbound_pumps_are_rejected_by_their_serial(self) -> None:
        records = read("four_pumps.hl7", config=None)
        errors = [r for r in records if isinstance(r, Reject) and r.level == "error"]
        assert [r.reason.split(" is not bound")[0] for r in errors] == [
            "pump P3101",
            "pump P3102",
            "pump I5201",
            "pump I5202",
            "pump I5201",
        ]

    def test_component_3_when_the_feed_says_so(self) -> None:
        config = BOUND.model_copy(update={"pump_id_components": [3]})
        records = read("four_pumps.hl7", config=config)
        assert not events(records)
        errors = [r for r in records if isinstance(r, Reject) and r.level == "error"]
        assert len(errors) == 5
        assert all("pump 0012210000000000 is not bound" in r.reason for r in errors)

    def test_components_are_chosen_per_sending_application(self) -> None:
        config = BOUND.model_copy(
            update={
                "pump_id_components": [3],
                "pump_id_components_by_sender": {"PAT_DEVICE_BBRAUN": [1]},
            }
        )
        starts = [
            e for e in events(read("four_pumps.hl7", config)) if e.type == "pump.infusion_started"
        ]
        assert len({e.pump_id for e in starts}) == 4

    @pytest.mark.parametrize("bad", [[], [0], [5], [1, 1]])
    def test_components_outside_1_to_4_are_refused(self, bad: list[int]) -> None:
        with pytest.raises(ValueError, match="pump_id_components"):
            AdapterConfig(pump_id_components=bad)


class TestAlarmEpisode:
    """Start, muted, minimized and cleared updates of one alarm are one alarm episode."""

    def test_four_updates_give_one_raise_and_one_clear(self) -> None:
        got = events(read("alarm_episode.hl7"))
        assert [(e.type, e.pump_id, e.alarm, e.cleared) for e in got] == [
            ("pump.alarm", "S7702", "door_open", None),
            ("pump.alarm", "S7702", "door_open", True),
        ]

    def test_muted_and_minimized_updates_are_each_said(self) -> None:
        records = read("alarm_episode.hl7")
        updates = [w for w in warnings(records) if w.position.startswith("message")]
        assert [w.position for w in updates] == ["message 2 (line 21)", "message 3 (line 37)"]
        assert all("the same alarm episode" in w.reason for w in updates)
        assert "audio-paused" in updates[0].reason

    def test_notes_between_messages_are_warnings_with_their_line(self) -> None:
        records = read("alarm_episode.hl7")
        notes = [w.position for w in warnings(records) if w.position.startswith("line")]
        assert notes == ["line 1", "line 3", "line 19", "line 35", "line 51"]

    def test_tally_counts_each_message_and_note_once(self) -> None:
        source = Hl7Source(BBRAUN / "alarm_episode.hl7", config=BOUND)
        list(source)
        assert (source.tally.records, source.tally.events, source.tally.warned) == (9, 2, 7)


class TestFirstStatus:
    """A first PCD-01 status of a pump that is off is reported, not ignored."""

    def test_powered_off_first_status_is_a_warning(self) -> None:
        records = read("pcd01_powered_off_first.hl7")
        (warning,) = warnings(records)
        assert warning.position == "message 1 (line 1)"
        assert "'pump-stopped-powered-off'" in warning.reason

    def test_delivering_after_it_is_a_start(self) -> None:
        (event,) = events(read("pcd01_powered_off_first.hl7"))
        assert (event.type, event.pump_id, event.patient_id) == (
            "pump.infusion_started",
            "I6003",
            "pt-603",
        )
