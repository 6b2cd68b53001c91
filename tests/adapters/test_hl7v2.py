"""HL7 v2 in: samples, framing quirks, rejects, binding, and STOP/START derivation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pumpguard.adapters.base import Reject
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig, PumpBinding
from pumpguard.adapters.hl7v2 import Hl7Source, Hl7Writer, frame, render_pcd01
from pumpguard.adapters.mdc import Term, lookup
from pumpguard.engine.events import Event

CET = timezone(timedelta(hours=1))


def read(data: str | bytes, config: AdapterConfig | None = None) -> list[Event | Reject]:
    raw = data.encode() if isinstance(data, str) else data
    return list(Hl7Source(data=raw, label="feed.hl7", config=config))


def events(records: list[Event | Reject]) -> list[Event]:
    return [r for r in records if not isinstance(r, Reject)]


def rejects(records: list[Event | Reject], level: str = "error") -> list[Reject]:
    return [r for r in records if isinstance(r, Reject) and r.level == level]


def pump_events(*specs: dict) -> list[Event]:
    base = {"patient_id": "p1", "pump_id": "PUMP-7", "source": "MW"}
    return [make_event({**base, **s}) for s in specs]


def t(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=CET)


class TestSamples:
    """Every HL7 sample in tests/fixtures/samples gives the events it describes."""

    def test_ipec_pcd10_delivery_start_gives_infusion_started(self, samples: Path) -> None:
        """IHE IPEC Rev 1.5 example: Dopamine 15.4 mL/h on pump E0002 (OBX-18 component 1)."""
        path = samples / "ihe" / "IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"
        (event,) = list(Hl7Source(path))
        assert event.type == "pump.infusion_started"
        assert event.patient_id == "HO2009002"
        assert event.pump_id == "E0002"
        assert event.channel == "A"
        assert event.drug == "Dopamine"
        assert event.rate_ml_h == 15.4
        assert event.vtbi_ml == 250.0
        assert event.concentration_mcg_ml == 1600.0
        # 5 ug/kg/min at the 82 kg the message carries, per day.
        assert event.dose_mcg_day == pytest.approx(5 * 82 * 1440)
        assert event.ts.isoformat() == "2015-10-15T13:21:06-05:00"

    def test_pcd03_order_is_rejected_as_not_an_event(self, samples: Path) -> None:
        """IHE TF-2 PCD-03 example 2 (RGV^O15) is an order to a pump, not a delivery."""
        path = samples / "ihe" / "PIV_PCD-03_RGV_O15_example2_normal_saline_IHE_TF2_Rev8.hl7"
        (reject,) = list(Hl7Source(path))
        assert isinstance(reject, Reject)
        assert reject.position == "message 1 (line 1)"
        assert "PCD-03" in reject.reason
        assert "not a delivery event" in reject.reason

    def test_adt_a01_preadmit_class_is_rejected_without_a_mapping(self, samples: Path) -> None:
        """FHIR-Converter ADT-A01-01 has PV1-2 = P (preadmit): no setting is guessed."""
        (reject,) = list(Hl7Source(samples / "adt" / "ADT-A01-01.hl7"))
        assert isinstance(reject, Reject)
        assert "PV1-2 patient class 'P'" in reject.reason

    def test_adt_a01_with_class_mapping_gives_admission(self, samples: Path) -> None:
        """With P mapped explicitly, the admit time is PV1-44 with its +01:10 offset."""
        config = AdapterConfig(pv1_patient_class={"P": "inpatient"})
        (event,) = list(Hl7Source(samples / "adt" / "ADT-A01-01.hl7", config=config))
        assert event.type == "encounter.admitted"
        assert event.patient_id == "PATID1234"
        assert event.setting == "inpatient"
        assert event.location == "HUH AE OMU/OMU B/Bed 03"
        assert event.ts.isoformat() == "2015-02-08T11:34:19+01:10"

    def test_adt_a02_trusts_msh9_over_evn1(self, samples: Path) -> None:
        """ADT-A02-01 says A01 in EVN-1 and A02 in MSH-9: a transfer, with a warning."""
        config = AdapterConfig(pv1_patient_class={"P": "inpatient"})
        records = list(Hl7Source(samples / "adt" / "ADT-A02-01.hl7", config=config))
        (warning,) = rejects(records, "warning")
        assert "MSH-9 trusted" in warning.reason
        (event,) = events(records)
        assert event.type == "encounter.transferred"
        assert event.ts.isoformat() == "2021-08-17T15:19:43.400000+02:00"

    def test_adt_a03_gives_discharge_at_pv1_45(self, samples: Path) -> None:
        """ADT-A03-01: discharge at PV1-45, no setting needed."""
        records = list(Hl7Source(samples / "adt" / "ADT-A03-01.hl7"))
        (event,) = events(records)
        assert event.type == "encounter.discharged"
        assert event.patient_id == "PATID1234"
        assert event.ts.isoformat() == "2015-02-09T11:34:19+01:10"
        assert not rejects(records)

    def test_adt_v23_with_bom_and_lf_gives_admission(self, samples: Path) -> None:
        """ADT01-23: UTF-8 BOM, LF segment ends, trailing spaces; inpatient admission."""
        (event,) = list(Hl7Source(samples / "adt" / "ADT01-23.hl7"))
        assert event.type == "encounter.admitted"
        assert event.patient_id == "10006579"
        assert event.setting == "inpatient"
        assert event.location == "PREOP/101/1"
        assert event.ts.isoformat() == "2005-01-10T04:55:02+07:00"
        assert event.event_id == "599102"


class TestFraming:
    """Framing is normalised before parsing: the same message reads the same way."""

    def test_mllp_framed_message_reads_like_plain(self, ipec: str) -> None:
        assert read("\x0b" + ipec + "\x1c\r") == read(ipec)

    def test_lf_segment_ends_read_like_cr(self, ipec: str) -> None:
        assert read(ipec.replace("\r", "\n")) == read(ipec)

    def test_crlf_segment_ends_read_like_cr(self, ipec: str) -> None:
        assert read(ipec.replace("\r", "\r\n")) == read(ipec)

    def test_leading_bom_is_dropped(self, ipec: str) -> None:
        assert read(b"\xef\xbb\xbf" + ipec.encode()) == read(ipec)

    def test_messages_are_numbered_in_the_file(self, ipec: str) -> None:
        second = ipec.replace("ORU^R42", "XYZ^Q99")
        records = read(ipec + second)
        assert isinstance(records[0], Event)
        assert isinstance(records[1], Reject)
        assert records[1].position.startswith("message 2 ")
        assert "XYZ^Q99" in records[1].reason

    def test_segment_before_msh_is_a_reject_with_its_line(self, ipec: str) -> None:
        records = read("PID|||x\r" + ipec)
        assert records[0] == Reject("feed.hl7", "message 1 (no MSH, line 1)", records[0].reason)
        assert "no MSH segment before them" in records[0].reason
        assert isinstance(records[1], Event)


class TestRejects:
    """What cannot become events is rejected with a reason, and the rest is still read."""

    def test_truncated_msh_is_rejected(self, ipec: str) -> None:
        records = read("MSH|^~\\&|PUMP\r" + ipec)
        assert "MSH-9" in records[0].reason
        assert isinstance(records[1], Event)

    def test_msh_without_encoding_characters_is_rejected(self) -> None:
        (reject,) = read("MSH|")
        assert "truncated MSH" in reject.reason

    def test_timestamp_without_offset_is_rejected(self, ipec: str) -> None:
        (reject,) = read(ipec.replace("20151015132106-0500", "20151015132106"))
        assert "no UTC offset" in reject.reason
        assert "OBR-7" in reject.reason

    def test_timestamp_without_offset_uses_configured_zone(self, ipec: str) -> None:
        config = AdapterConfig(time_zone="America/Chicago")
        (event,) = read(ipec.replace("20151015132106-0500", "20151015132106"), config)
        assert event.ts.isoformat() == "2015-10-15T13:21:06-05:00"

    def test_ambiguous_local_time_is_rejected(self, ipec: str) -> None:
        config = AdapterConfig(time_zone="Europe/Berlin")
        (reject,) = read(ipec.replace("20151015132106-0500", "20151025023000"), config)
        assert "ambiguous" in reject.reason

    def test_obx14_overrides_obr7(self, ipec: str) -> None:
        text = ipec.replace(
            "197288^MDC_EVT_PUMP_DELIV_START^MDC||||||R",
            "197288^MDC_EVT_PUMP_DELIV_START^MDC||||||R|||20151015130000-0500",
        )
        (event,) = read(text)
        assert event.ts.isoformat() == "2015-10-15T13:00:00-05:00"

    def test_bad_numeric_value_is_rejected(self, ipec: str) -> None:
        (reject,) = read(ipec.replace("|1.1.2.4|15.4|", "|1.1.2.4|fifteen|"))
        assert "'fifteen' is not a number" in reject.reason
        assert "MDC_FLOW_FLUID_PUMP" in reject.reason

    def test_unknown_rate_unit_is_rejected_not_assumed(self, ipec: str) -> None:
        text = ipec.replace(
            "|1.1.2.4|15.4|265266^MDC_DIM_MILLI_L_PER_HR^MDC^mL/h^mL/h^UCUM",
            "|1.1.2.4|15.4|0^^^furlong/fortnight",
        ).replace("|1.1.1.2|15.4|265266", "|1.1.1.2|15.4|0")
        records = read(text)
        assert not events(records)
        assert any("furlong/fortnight" in r.reason for r in rejects(records, "warning"))
        assert any("rate_ml_h" in r.reason for r in rejects(records))

    def test_reject_does_not_stop_the_rest(self, ipec: str) -> None:
        bad = ipec.replace("|1.1.2.4|15.4|", "|1.1.2.4|x|")
        records = read(ipec + bad + ipec.replace("6358051206735492253", "2"))
        assert [type(r).__name__ for r in records] == [
            "InfusionStarted",
            "Reject",
            "InfusionStarted",
        ]


UNKNOWN_PID = "PID|||||Unknown Patient||||||||||||||||||||||||||Y"


class TestBinding:
    """A pump event is bound to a patient explicitly, or rejected; never guessed."""

    def unbound(self, ipec: str) -> str:
        lines = ipec.split("\r")
        lines[1] = UNKNOWN_PID
        return "\r".join(lines)

    def test_unknown_patient_is_rejected_with_the_reason(self, ipec: str) -> None:
        (reject,) = read(self.unbound(ipec))
        assert "pump E0002 is not bound" in reject.reason
        assert "PID-31=Y" in reject.reason

    def test_configured_binding_binds_unknown_patient(self, ipec: str) -> None:
        config = AdapterConfig(bindings=[PumpBinding(pump_id="E0002", patient_id="p9")])
        (event,) = read(self.unbound(ipec), config)
        assert event.patient_id == "p9"

    def test_binding_outside_its_window_does_not_bind(self, ipec: str) -> None:
        binding = PumpBinding.model_validate(
            {"pump_id": "E0002", "patient_id": "p9", "to": "2015-01-01T00:00:00Z"}
        )
        (reject,) = read(self.unbound(ipec), AdapterConfig(bindings=[binding]))
        assert "not bound" in reject.reason

    def test_configured_binding_conflicting_with_pid_is_rejected(self, ipec: str) -> None:
        config = AdapterConfig(bindings=[PumpBinding(pump_id="E0002", patient_id="p9")])
        (reject,) = read(ipec, config)
        assert "conflict" in reject.reason

    def test_association_event_binds_later_unknown_patient_messages(self, ipec: str) -> None:
        assoc = ipec.replace("197288^MDC_EVT_PUMP_DELIV_START", "0^MDC_EVT_PUMP_PATIENT_CHANGE")
        records = read(assoc + self.unbound(ipec))
        (event,) = events(records)
        assert event.patient_id == "HO2009002"
        (note,) = rejects(records, "warning")
        assert "associated with patient HO2009002" in note.reason

    def test_overlapping_bindings_of_one_pump_are_refused(self) -> None:
        with pytest.raises(ValueError, match="bound to both"):
            AdapterConfig(
                bindings=[
                    PumpBinding(pump_id="P", patient_id="a"),
                    PumpBinding(pump_id="P", patient_id="b"),
                ]
            )


class TestMdcMatching:
    """Terms match on REFID or on a non-zero code, across vendor spellings."""

    def test_dev_pump_and_pump_spellings_match_the_same_term(self) -> None:
        assert lookup("0", "MDC_DEV_PUMP_INFUSING_STATUS") is Term.INFUSING_STATUS
        assert lookup("0", "MDC_PUMP_CURRENT_DELIVERY_STATUS") is Term.DELIVERY_STATUS

    def test_code_matches_when_refid_is_missing(self) -> None:
        assert lookup("157784", "") is Term.RATE

    def test_code_zero_never_matches(self) -> None:
        assert lookup("0", "MDC_SOMETHING_UNKNOWN") is None

    def test_vendor_spelling_of_event_reads_the_same(self, ipec: str) -> None:
        text = ipec.replace("MDC_DEV_PUMP_ACTIVE_SOURCES", "MDC_PUMP_ACTIVE_SOURCES")
        assert read(text) == read(ipec)


def course(*specs: dict) -> bytes:
    return frame(Hl7Writer().render_all(pump_events(*specs))).encode()


START = {"event_id": "s", "type": "pump.infusion_started", "ts": t(8), "drug": "blinatumomab"}


class TestDerivation:
    """IPEC sends bolus, pause, rate change and bag change as STOP/START pairs."""

    def test_switching_stop_then_primary_start_is_a_rate_change(self) -> None:
        got = events(
            read(
                course(
                    {**START, "rate_ml_h": 10.0},
                    {"event_id": "r", "type": "pump.rate_changed", "ts": t(9), "rate_ml_h": 5.0},
                )
            )
        )
        assert [e.type for e in got] == ["pump.infusion_started", "pump.rate_changed"]
        assert got[1].rate_ml_h == 5.0

    def test_clinician_source_start_is_a_bolus_and_return_is_silent(self) -> None:
        got = events(
            read(
                course(
                    {**START, "rate_ml_h": 10.0},
                    {"event_id": "b", "type": "pump.bolus", "ts": t(9), "volume_ml": 3.0},
                )
            )
        )
        assert [e.type for e in got] == ["pump.infusion_started", "pump.bolus"]
        assert got[1].volume_ml == 3.0

    def test_clinician_stop_then_start_is_pause_and_resume(self) -> None:
        got = events(
            read(
                course(
                    {**START, "rate_ml_h": 10.0},
                    {
                        "event_id": "x",
                        "type": "pump.infusion_stopped",
                        "ts": t(9),
                        "reason": "user",
                    },
                    {"event_id": "y", "type": "pump.infusion_resumed", "ts": t(10)},
                )
            )
        )
        assert [e.type for e in got] == [
            "pump.infusion_started",
            "pump.infusion_stopped",
            "pump.infusion_resumed",
        ]
        assert got[1].reason == "user"

    def test_alarm_stop_with_occlusion_condition_gives_occlusion_reason(self) -> None:
        got = events(
            read(
                course(
                    {**START, "rate_ml_h": 10.0},
                    {
                        "event_id": "x",
                        "type": "pump.infusion_stopped",
                        "ts": t(9),
                        "reason": "occlusion",
                    },
                )
            )
        )
        assert got[1].reason == "occlusion"

    def test_completion_then_start_with_new_container_is_a_bag_change(self) -> None:
        got = events(
            read(
                course(
                    {**START, "rate_ml_h": 10.0, "bag_id": "B1"},
                    {
                        "event_id": "c",
                        "type": "pump.infusion_completed",
                        "ts": t(9),
                        "bag_id": "B1",
                    },
                    {
                        "event_id": "n",
                        "type": "pump.bag_changed",
                        "ts": t(10),
                        "bag_id": "B2",
                        "previous_bag_id": "B1",
                    },
                    {**START, "event_id": "n#2", "ts": t(10), "rate_ml_h": 10.0, "bag_id": "B2"},
                )
            )
        )
        assert [e.type for e in got][-2:] == ["pump.bag_changed", "pump.infusion_started"]
        assert got[-2].previous_bag_id == "B1"

    def test_switching_stop_without_restart_is_reported_as_stop_at_end(self) -> None:
        text = Hl7Writer().render_all(pump_events({**START, "rate_ml_h": 10.0}))
        writer_stop = Hl7Writer()
        writer_stop.render(pump_events({**START, "rate_ml_h": 10.0})[0])
        stop = writer_stop.render(
            pump_events(
                {"event_id": "r", "type": "pump.rate_changed", "ts": t(9), "rate_ml_h": 1.0}
            )[0]
        )[0]
        got = events(read(frame([*text, stop])))
        assert [e.type for e in got] == ["pump.infusion_started", "pump.infusion_stopped"]
        assert got[1].reason == "other"
        assert got[1].ts == t(9)


class TestPcd01:
    """A PCD-01-only feed still yields starts, stops and rate changes from status changes."""

    def status(self, n: int, hour: int, delivering: bool, rate: float | None = 10.0, **kw) -> str:
        return render_pcd01(
            pump_id="PUMP-1",
            patient_id="p1",
            ts=t(hour),
            control=f"m{n}",
            delivering=delivering,
            rate_ml_h=rate,
            drug="blinatumomab",
            **kw,
        )

    def test_status_changes_give_start_rate_change_stop(self) -> None:
        msgs = [
            self.status(1, 7, False),
            self.status(2, 8, True),
            self.status(3, 9, True),
            self.status(4, 10, True, rate=5.0),
            self.status(5, 11, False),
            self.status(6, 12, True, rate=5.0),
        ]
        got = events(read(frame(msgs)))
        assert [e.type for e in got] == [
            "pump.infusion_started",
            "pump.rate_changed",
            "pump.infusion_stopped",
            "pump.infusion_resumed",
        ]
        assert got[0].ts == t(8)
        assert got[1].rate_ml_h == 5.0

    def test_first_status_delivering_makes_no_start_but_warns(self) -> None:
        records = read(frame([self.status(1, 8, True)]))
        assert not events(records)
        (warning,) = rejects(records, "warning")
        assert "start time is unknown" in warning.reason

    def test_not_delivering_with_nothing_left_is_completion(self) -> None:
        msgs = [
            self.status(1, 7, False),
            self.status(2, 8, True),
            self.status(3, 9, False, vtbi_remain_ml=0.0, volume_infused_ml=240.0),
        ]
        got = events(read(frame(msgs)))
        assert got[-1].type == "pump.infusion_completed"
        assert got[-1].volume_infused_ml == 240.0


class TestPcd04:
    """Alarm lifecycles are de-duplicated on the OBR-29 parent."""

    def test_start_updates_and_end_give_one_alarm_and_one_clear(self) -> None:
        writer = Hl7Writer()
        alarm = {"type": "pump.alarm", "alarm": "occlusion"}
        start = writer.render(pump_events({**alarm, "event_id": "a1", "ts": t(9)})[0])[0]
        update = start.replace("|start|", "|update|").replace("|a1|P|", "|a2|P|")
        update = update.replace("OBR|1||a1|", "OBR|1||a2|") + ""
        # Updates reference the first message through OBR-29.
        update = update.replace(
            "OBR|1||a2|196616^MDC_EVT_ALARM^MDC|||20260302090000+0100",
            "OBR|1||a2|196616^MDC_EVT_ALARM^MDC|||20260302090000+0100" + "|" * 22 + "a1",
        )
        end = writer.render(
            pump_events({**alarm, "event_id": "a3", "ts": t(10), "cleared": True})[0]
        )[0]
        got = events(read(frame([start, update, update, end])))
        assert [(e.alarm, e.cleared) for e in got] == [("occlusion", None), ("occlusion", True)]

    def test_alarm_without_phase_is_rejected(self) -> None:
        writer = Hl7Writer()
        msg = writer.render(
            pump_events({"type": "pump.alarm", "alarm": "occlusion", "event_id": "a", "ts": t(9)})[
                0
            ]
        )[0]
        msg = "\r".join(s for s in msg.split("\r") if "EVENT_PHASE" not in s)
        (reject,) = read(msg)
        assert "EVENT_PHASE" in reject.reason


class TestParsers:
    """The fast reader and python-hl7's parser give the same records."""

    @pytest.mark.parametrize(
        "name",
        [
            "ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7",
            "adt/ADT-A01-01.hl7",
            "adt/ADT-A02-01.hl7",
            "adt/ADT-A03-01.hl7",
            "adt/ADT01-23.hl7",
        ],
    )
    def test_python_hl7_parser_gives_same_records(self, samples: Path, name: str) -> None:
        fast = AdapterConfig(pv1_patient_class={"P": "inpatient", "I": "inpatient"})
        slow = fast.model_copy(update={"hl7_parser": "python-hl7"})
        assert list(Hl7Source(samples / name, config=slow)) == list(
            Hl7Source(samples / name, config=fast)
        )


class TestFuzzFindings:
    """Inputs the fuzzer found crashing the reader are rejects of their message."""

    def test_python_hl7_path_rejects_empty_encoding_characters(self) -> None:
        config = AdapterConfig(hl7_parser="python-hl7")
        (reject,) = read("MSH||x|y|z|w|v|ORU^R42|1|P|2.6\r", config)
        assert "MSH-2 encoding characters '' are not valid" in reject.reason
