"""FHIR R4 in: samples, MedicationAdministration, Encounter, graded reactions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pumpguard.adapters.base import Reject
from pumpguard.adapters.config import AdapterConfig, PumpBinding
from pumpguard.adapters.fhir import FhirSource, FhirXmlSource


def read(resource: Any, config: AdapterConfig | None = None, **kw: Any) -> list:
    return list(FhirSource(data=json.dumps(resource).encode(), label="f", config=config, **kw))


BLINA = {
    "resourceType": "MedicationAdministration",
    "id": "ma1",
    "status": "in-progress",
    "medicationCodeableConcept": {
        "coding": [
            {"system": "http://www.whocc.no/atc", "code": "L01FX07", "display": "Blinatumomab"}
        ]
    },
    "subject": {"reference": "Patient/p1"},
    "device": [{"reference": "Device/PUMP-7"}],
    "effectivePeriod": {"start": "2026-03-02T08:00:00+01:00"},
    "dosage": {
        "rateQuantity": {
            "value": 10,
            "unit": "mL/h",
            "system": "http://unitsofmeasure.org",
            "code": "mL/h",
        }
    },
}
DEXA = {
    "resourceType": "MedicationAdministration",
    "id": "ma2",
    "status": "completed",
    "medicationCodeableConcept": {"text": "Dexamethasone 20 mg IV"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-02T07:00:00+01:00",
    "dosage": {
        "dose": {"value": 20, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
        "route": {"text": "IV"},
    },
}


class TestSamples:
    """Every FHIR sample in tests/fixtures/samples is read or rejected with a reason."""

    def test_us_core_r5_shaped_encounter_is_read_with_a_warning(self, samples: Path) -> None:
        """US Core Encounter-example-1: class list + actualPeriod (R5); AMB = outpatient."""
        records = list(FhirSource(samples / "fhir" / "USCore_Encounter-example-1.json"))
        warning, admitted, discharged = records
        assert isinstance(warning, Reject)
        assert warning.level == "warning"
        assert "R5-shaped" in warning.reason
        assert admitted.type == "encounter.admitted"
        assert admitted.setting == "outpatient"
        assert admitted.patient_id == "example"
        assert admitted.ts.isoformat() == "2015-11-01T17:00:14-05:00"
        assert discharged.type == "encounter.discharged"
        assert discharged.ts.isoformat() == "2015-11-01T18:00:14-05:00"

    def test_us_core_temperature_is_rejected_as_no_graded_reaction(self, samples: Path) -> None:
        (reject,) = list(FhirSource(samples / "fhir" / "USCore_Observation-temperature.json"))
        assert "carries no graded reaction" in reject.reason

    def test_us_core_blood_pressure_is_rejected_as_no_graded_reaction(self, samples: Path) -> None:
        (reject,) = list(FhirSource(samples / "fhir" / "USCore_Observation-blood-pressure.json"))
        assert "carries no graded reaction" in reject.reason

    def test_interim_r5_medication_administration_xml_is_rejected_clearly(
        self, samples: Path
    ) -> None:
        """HL7/fhir medicationadministration0302.xml mixes R5 'encounter' with R4 elements."""
        name = "HL7FHIR_medicationadministration0302_interim-R5-build_continuous_infusion.xml"
        (reject,) = list(FhirXmlSource(samples / "fhir" / name))
        assert "FHIR XML" in reject.reason
        assert "interim build" in reject.reason
        assert "encounter" in reject.reason


class TestMedicationAdministration:
    """Blinatumomab becomes pump events; other drugs become medication.administered."""

    def test_blinatumomab_in_progress_gives_infusion_started_with_rate(self) -> None:
        (event,) = read(BLINA)
        assert event.type == "pump.infusion_started"
        assert (event.drug, event.rate_ml_h, event.pump_id) == ("blinatumomab", 10.0, "PUMP-7")
        assert event.event_id == "MedicationAdministration/ma1"

    def test_completed_period_adds_completion_at_its_end(self) -> None:
        res = {
            **BLINA,
            "status": "completed",
            "effectivePeriod": {
                "start": "2026-03-02T08:00:00+01:00",
                "end": "2026-03-03T08:00:00+01:00",
            },
        }
        _started, completed = read(res)
        assert completed.type == "pump.infusion_completed"
        assert completed.event_id == "MedicationAdministration/ma1#2"

    def test_rate_ratio_ml_per_hour_is_converted(self) -> None:
        dosage = {
            "rateRatio": {
                "numerator": {"value": 20, "code": "mL"},
                "denominator": {"value": 2, "code": "h"},
            }
        }
        (event,) = read({**BLINA, "dosage": dosage})
        assert event.rate_ml_h == 10.0

    def test_without_device_the_configured_binding_names_the_pump(self) -> None:
        config = AdapterConfig(bindings=[PumpBinding(pump_id="PUMP-9", patient_id="p1")])
        res = {k: v for k, v in BLINA.items() if k != "device"}
        (event,) = read(res, config)
        assert event.pump_id == "PUMP-9"

    def test_without_device_or_binding_is_rejected(self) -> None:
        (reject,) = read({k: v for k, v in BLINA.items() if k != "device"})
        assert "names no pump" in reject.reason

    def test_dexamethasone_gives_medication_administered_in_mg(self) -> None:
        (event,) = read(DEXA)
        assert event.type == "medication.administered"
        assert (event.drug, event.dose_mg, event.route) == ("dexamethasone", 20.0, "IV")

    def test_dose_in_a_unit_without_mg_equivalent_is_rejected(self) -> None:
        dose = {"value": 20, "unit": "meq", "code": "meq"}
        (reject,) = read({**DEXA, "dosage": {"dose": dose}})
        assert "meq" in reject.reason

    def test_r5_shaped_medication_administration_is_rejected(self) -> None:
        res = {k: v for k, v in DEXA.items() if k != "effectiveDateTime"}
        (reject,) = read({**res, "occurenceDateTime": "2026-03-02T07:00:00+01:00"})
        assert "R5-shaped" in reject.reason

    def test_time_without_offset_is_rejected(self) -> None:
        """FHIR itself requires the offset when a time is given; the R4B model says so."""
        (reject,) = read({**DEXA, "effectiveDateTime": "2026-03-02T07:00:00"})
        assert "effectiveDateTime" in reject.reason


class TestGradedReactions:
    """AdverseEvent and Observation become clinical.adverse_event only with a grade."""

    def test_observation_with_crs_grade_gives_adverse_event(self) -> None:
        res = {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "Cytokine release syndrome grade"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-03-03T02:00:00+01:00",
            "valueCodeableConcept": {"text": "Grade 3"},
        }
        (event,) = read(res)
        assert (event.type, event.category, event.grade) == ("clinical.adverse_event", "crs", 3)

    def test_adverse_event_with_grade_extension_gives_adverse_event(self) -> None:
        res = {
            "resourceType": "AdverseEvent",
            "id": "a1",
            "actuality": "actual",
            "event": {"text": "ICANS"},
            "subject": {"reference": "Patient/p1"},
            "date": "2026-03-03T02:00:00+01:00",
            "extension": [{"url": "http://example.org/ctcae-grade", "valueInteger": 2}],
        }
        (event,) = read(res)
        assert (event.category, event.grade) == ("neurotoxicity", 2)

    def test_adverse_event_with_only_mild_severity_is_rejected(self) -> None:
        res = {
            "resourceType": "AdverseEvent",
            "id": "a1",
            "actuality": "actual",
            "event": {"text": "Cytokine release syndrome"},
            "subject": {"reference": "Patient/p1"},
            "date": "2026-03-03T02:00:00+01:00",
            "severity": {"coding": [{"code": "mild"}]},
        }
        (reject,) = read(res)
        assert "not a grade" in reject.reason


class TestContainers:
    """Bundles and NDJSON carry several resources; each is placed by entry or line."""

    def test_bundle_entries_are_numbered(self) -> None:
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": DEXA}, {"resource": {"resourceType": "Patient"}}],
        }
        event, reject = read(bundle)
        assert event.type == "medication.administered"
        assert reject.position == "entry 2"
        assert "Patient is not a resource pumpguard reads" in reject.reason

    def test_ndjson_lines_are_numbered_and_bad_lines_do_not_stop_the_rest(self) -> None:
        data = (json.dumps(DEXA) + "\n{oops\n" + json.dumps(BLINA) + "\n").encode()
        records = list(FhirSource(data=data, label="f", ndjson=True))
        assert [type(r).__name__ for r in records] == [
            "MedicationAdministered",
            "Reject",
            "InfusionStarted",
        ]
        assert records[1].position == "line 2"


def bundle(entry: Any) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entry}).encode()


def source(data: bytes, **kw: Any) -> tuple[list, Any]:
    src = FhirSource(data=data, label="f", **kw)
    records = list(src)
    return records, src.tally


class TestOneFatePerResource:
    """Each resource (Bundle entry, NDJSON line) ends as events, a warning or a reject."""

    def test_bundle_entries_that_are_not_objects_are_rejected_by_index(self) -> None:
        records, tally = source(bundle([{"resource": DEXA}, "s", 7, None, []]))
        assert [r.position for r in records if isinstance(r, Reject)] == [
            "entry 2",
            "entry 3",
            "entry 4",
            "entry 5",
        ]
        assert "entry is a string, not an object" in records[1].reason
        assert (tally.records, tally.events, tally.rejected) == (5, 1, 4)

    def test_bundle_entry_that_is_no_list_is_one_reject(self) -> None:
        for entry in ("x", 42, None, {"resource": DEXA}):
            (reject,), tally = source(bundle(entry))
            assert reject.position == "Bundle.entry"
            assert "not a list of entries" in reject.reason
            assert (tally.records, tally.rejected) == (1, 1)

    def test_empty_bundle_is_a_warning(self) -> None:
        (warning,), tally = source(bundle([]))
        assert warning.level == "warning"
        assert (tally.records, tally.warned) == (1, 1)

    def test_json_nested_ten_thousand_deep_is_a_reject_in_a_document(self) -> None:
        (reject,), tally = source(b'{"resourceType": "Bundle", "entry": ' + b"[" * 10000)
        assert "nested too deeply" in reject.reason
        assert tally.rejected == 1

    def test_json_nested_ten_thousand_deep_costs_one_ndjson_line(self) -> None:
        data = json.dumps(DEXA).encode() + b"\n" + b"[" * 10000 + b"]" * 10000 + b"\n"
        records, tally = source(data, ndjson=True)
        assert records[1].position == "line 2"
        assert (tally.records, tally.events, tally.rejected) == (2, 1, 1)

    def test_a_latin1_byte_costs_one_ndjson_line(self) -> None:
        data = b'{"resourceType": "Patient", "name": "Jos\xe9"}\n' + json.dumps(DEXA).encode()
        records, tally = source(data, ndjson=True)
        assert (records[0].position, records[0].reason[:9]) == ("line 1", "not UTF-8")
        assert (tally.records, tally.events, tally.rejected) == (2, 1, 1)

    def test_a_mapper_failure_costs_that_resource_only_and_says_it_is_a_defect(
        self, monkeypatch: Any
    ) -> None:
        from pumpguard.adapters import fhir

        def broken(self: Any) -> None:
            raise TypeError("unforeseen shape")

        monkeypatch.setattr(fhir._Mapper, "_encounter", broken)
        encounter = {"resourceType": "Encounter", "id": "e1"}
        records, tally = source(bundle([{"resource": encounter}, {"resource": DEXA}]))
        assert records[0].position == "entry 1"
        assert "TypeError: 'unforeseen shape' (a defect in pumpguard" in records[0].reason
        assert (tally.records, tally.events, tally.rejected) == (2, 1, 1)

    def test_events_carry_their_resource_position_for_duplicate_reports(self) -> None:
        src = FhirSource(data=bundle([{"resource": DEXA}, {"resource": BLINA}]), label="f")
        positions = []
        for _ in src:
            positions.append(src.position)
        assert positions == ["entry 1", "entry 2"]


def test_a_lone_surrogate_rejects_its_resource_only() -> None:
    damaged = json.dumps({**DEXA, "id": "x"}).replace('"x"', '"\\ud800"')
    data = (damaged + "\n" + json.dumps(DEXA) + "\n").encode()
    records, tally = source(data, ndjson=True)
    assert (records[0].position, "half a UTF-16 pair" in records[0].reason) == ("line 1", True)
    assert (tally.events, tally.rejected) == (1, 1)


def test_the_infused_drug_is_the_feed_configs_not_the_adapters():
    """Issue 8 item 20: no drug name hard-coded in the FHIR adapter."""
    blina_given = AdapterConfig(infusion_drug="dexamethasone")
    (as_medication,) = read(BLINA, config=blina_given)  # here blinatumomab is "another drug"
    assert isinstance(as_medication, Reject)
    assert as_medication.reason == "blinatumomab administration has no dosage.dose"
    (reject,) = read(DEXA, config=blina_given)
    assert isinstance(reject, Reject)
    assert reject.reason.startswith("dexamethasone administration")
