"""Fuzz the FHIR JSON source: single resources, Bundles and NDJSON (see fuzz_common.py).

.venv/bin/python benchmarks/fuzz_fhir.py --seconds 180
"""

from __future__ import annotations

import json

import atheris
from fuzz_common import check, run, seeds_from

with atheris.instrument_imports():
    from pumpguard.adapters.fhir import FhirSource

ENCOUNTER = {
    "resourceType": "Encounter", "id": "enc1", "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2026-03-02T07:00:00+01:00", "end": "2026-03-04T07:00:00+01:00"},
    "location": [{"location": {"display": "Ward 4"}, "period": {"start": "2026-03-03T07:00:00Z"}}],
}  # fmt: skip
BLINA = {
    "resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
    "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc",
                                              "code": "L01FX07"}]},
    "subject": {"reference": "Patient/p1"}, "device": [{"reference": "Device/PUMP-7"}],
    "effectivePeriod": {"start": "2026-03-02T08:00:00+01:00", "end": "2026-03-03T08:00:00+01:00"},
    "dosage": {"rateRatio": {"numerator": {"value": 240, "code": "mL"},
                             "denominator": {"value": 24, "code": "h"}}},
}  # fmt: skip
DEXA = {
    "resourceType": "MedicationAdministration", "id": "ma2", "status": "completed",
    "medicationCodeableConcept": {"text": "Dexamethasone"}, "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-02T07:00:00+01:00",
    "dosage": {"dose": {"value": 20, "unit": "mg", "code": "mg"}},
}  # fmt: skip
REACTION = {
    "resourceType": "AdverseEvent", "id": "ae1", "actuality": "actual",
    "event": {"text": "Cytokine release syndrome"}, "subject": {"reference": "Patient/p1"},
    "date": "2026-03-02T12:00:00+01:00",
    "extension": [{"url": "http://example.org/ctcae-grade", "valueInteger": 3}],
}  # fmt: skip
GRADE = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "code": {"text": "Neurotoxicity grade"}, "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-02T12:00:00+01:00", "valueCodeableConcept": {"text": "Grade 2"},
}  # fmt: skip
RESOURCES = [ENCOUNTER, BLINA, DEXA, REACTION, GRADE]


def one_input(data: bytes) -> None:
    """First byte picks the framing: even for NDJSON, odd for one document (or a Bundle)."""
    if not data:
        return
    check(FhirSource(data=data[1:], label="fuzz", ndjson=data[0] % 2 == 0))


if __name__ == "__main__":
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in RESOURCES]}  # fmt: skip
    seeds = [b"\x00" + "".join(json.dumps(r) + "\n" for r in RESOURCES).encode()]
    seeds += [b"\x01" + json.dumps(bundle).encode()]
    seeds += [b"\x01" + json.dumps(r).encode() for r in RESOURCES]
    seeds += [b"\x00" + s for s in seeds_from("fhir", ["*.ndjson"])]
    seeds += [b"\x01" + s for s in seeds_from("fhir", ["*.json"])]
    run(one_input, seeds)
