"""Mutated valid inputs, any damage: every source still accounts for every record.

Hypothesis starts from valid JSONL, FHIR (NDJSON and a Bundle) and CSV and
damages them at random: bytes deleted, inserted, repeated or cut off, tokens
that broke readers before (deep nesting, NUL, a Latin-1 byte, a stray quote or
delimiter), and for JSON any value swapped for another. Whatever comes out, the
source never raises, its tally balances, and every reject says where and why.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pumpguard.adapters.base import EventSource, Reject
from pumpguard.adapters.common import canonical_json
from pumpguard.adapters.csv_source import CsvMapping, CsvSource
from pumpguard.adapters.fhir import FhirSource
from pumpguard.adapters.jsonl import JsonlSource
from pumpguard.engine.events import Event

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    b"[" * 1200,
    b'{"a":' * 1200,
    b"\x00",
    b"\xe9",
    b'"',
    b",",
    b";",
    b"\n",
    b"\r",
    b"{",
    b"}",
]
TOKENS += [b"null", b"NaN", b"\xef\xbb\xbf", b"0001-01-01T00:30:00+01:00", b"x" * 5000]
TOKENS += [b"\\ud800", b"\\udc00x"]  # JSON escapes of half a UTF-16 pair

_op = st.tuples(
    st.sampled_from(["delete", "insert", "repeat", "truncate", "replace"]),
    st.floats(0, 1),
    st.floats(0, 1),
    st.one_of(st.sampled_from(TOKENS), st.binary(max_size=6)),
)


def damage(data: bytes, ops: list[tuple[str, float, float, bytes]]) -> bytes:
    """Apply byte-level edits at relative positions (so they land anywhere in any input)."""
    for kind, at, span, payload in ops:
        i = int(at * len(data))
        j = min(len(data), i + 1 + int(span * 40))
        if kind == "delete":
            data = data[:i] + data[j:]
        elif kind == "insert":
            data = data[:i] + payload + data[i:]
        elif kind == "repeat":
            data = data[:j] + data[i:j] + data[j:]
        elif kind == "truncate":
            data = data[:i]
        else:
            data = data[:i] + payload + data[j:]
    return data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _paths(v, (*prefix, i))
    return found


def swap_value(obj: Any, data: st.DataObject) -> Any:
    """A deep copy of ``obj`` with one value, anywhere in it, replaced by any JSON value."""
    obj = json.loads(json.dumps(obj))
    path = data.draw(st.sampled_from(_paths(obj)[1:] or [()]))
    value = data.draw(json_values)
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return obj


def check_accounting(src: EventSource) -> list[Any]:
    """The shared promise: no exception, a balanced tally, a place and a reason on every reject."""
    records = list(src)
    tally = src.tally
    assert tally.balanced
    assert tally.records == tally.events + tally.warned + tally.rejected
    events = [r for r in records if isinstance(r, Event)]
    assert len(events) >= tally.events
    for r in records:
        if isinstance(r, Reject):
            assert r.source
            assert r.position
            assert r.reason
            assert len(r.reason) < 1000
            r.to_json().encode("utf-8")  # a rejects file can hold it
        else:
            canonical_json(r).encode("utf-8")  # the replay's spool and convert can hold it
    return records


# -- JSONL -------------------------------------------------------------------------

GOOD_LINES = [
    {"event_id": "e1", "type": "patient.registered", "ts": "2026-03-02T07:00:00Z",
     "patient_id": "p1", "weight_kg": 70, "indication": "relapsed_refractory"},
    {"event_id": "e2", "type": "pump.infusion_started", "ts": "2026-03-02T08:00:00+01:00",
     "patient_id": "p1", "pump_id": "P", "drug": "blinatumomab", "rate_ml_h": 10},
    {"event_id": "e3", "type": "pump.flush", "ts": "2026-03-02T09:00:00Z", "patient_id": "p1",
     "pump_id": "P", "volume_ml": 5},
]  # fmt: skip
GOOD_JSONL = "".join(json.dumps(e) + "\n" for e in GOOD_LINES).encode()


def _jsonl_check(data: bytes) -> None:
    src = JsonlSource(data=data, label="in.jsonl")
    records = check_accounting(src)
    # a line is what the file reader splits on, b"\n" only (bytes.splitlines splits on more)
    nonblank = sum(1 for line in data.split(b"\n") if line.strip())
    assert src.tally.records == nonblank
    errors = [r for r in records if isinstance(r, Reject) and r.level == "error"]
    assert len(errors) == src.tally.rejected
    assert all(r.position.startswith("line ") for r in records if isinstance(r, Reject))


@SETTINGS
@given(ops=st.lists(_op, max_size=5))
def test_damaged_jsonl_bytes_are_accounted_for(ops):
    _jsonl_check(damage(GOOD_JSONL, ops))


@SETTINGS
@given(data=st.data())
def test_jsonl_with_any_value_swapped_is_accounted_for(data):
    lines = [swap_value(e, data) if data.draw(st.booleans()) else e for e in GOOD_LINES]
    _jsonl_check("".join(json.dumps(e) + "\n" for e in lines).encode())


# -- FHIR --------------------------------------------------------------------------

ENCOUNTER = {
    "resourceType": "Encounter", "id": "enc1", "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2026-03-02T07:00:00+01:00"},
    "location": [{"location": {"display": "Ward 4"}}],
}  # fmt: skip
DEXA = {
    "resourceType": "MedicationAdministration", "id": "ma2", "status": "completed",
    "medicationCodeableConcept": {"text": "Dexamethasone"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-02T07:00:00+01:00",
    "dosage": {"dose": {"value": 20, "unit": "mg", "system": "http://unitsofmeasure.org",
                        "code": "mg"}, "route": {"text": "IV"}},
}  # fmt: skip
BLINA = {
    "resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
    "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc",
                                              "code": "L01FX07"}]},
    "subject": {"reference": "Patient/p1"},
    "device": [{"reference": "Device/PUMP-7"}],
    "effectivePeriod": {"start": "2026-03-02T08:00:00+01:00", "end": "2026-03-03T08:00:00+01:00"},
    "dosage": {"rateQuantity": {"value": 10, "unit": "mL/h", "system": "http://unitsofmeasure.org",
                                "code": "mL/h"}},
}  # fmt: skip
GRADE = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "code": {"text": "Cytokine release syndrome grade"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-02T12:00:00+01:00", "valueInteger": 3,
}  # fmt: skip
RESOURCES = [ENCOUNTER, DEXA, BLINA, GRADE]


def _bundle(resources: list[Any]) -> bytes:
    entry = [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entry}).encode()


def _ndjson(resources: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in resources).encode()


def test_the_fhir_starting_points_are_read_whole():
    """The mutations start from inputs that are fully valid."""
    for data, ndjson in ((_ndjson(RESOURCES), True), (_bundle(RESOURCES), False)):
        src = FhirSource(data=data, label="f", ndjson=ndjson)
        records = list(src)
        assert not [r for r in records if isinstance(r, Reject)]
        assert (src.tally.records, src.tally.events) == (4, 4)


@SETTINGS
@given(ops=st.lists(_op, max_size=5), ndjson=st.booleans())
def test_damaged_fhir_bytes_are_accounted_for(ops, ndjson):
    base = _ndjson(RESOURCES) if ndjson else _bundle(RESOURCES)
    src = FhirSource(data=damage(base, ops), label="f", ndjson=ndjson)
    check_accounting(src)


@SETTINGS
@given(data=st.data(), ndjson=st.booleans())
def test_fhir_with_any_value_swapped_is_accounted_for(data, ndjson):
    resources = [swap_value(r, data) if data.draw(st.booleans()) else r for r in RESOURCES]
    if ndjson:
        payload = _ndjson(resources)
    else:
        bundle = json.loads(_bundle(resources))
        if data.draw(st.booleans()):
            bundle = swap_value(bundle, data)
        payload = json.dumps(bundle).encode()
    src = FhirSource(data=payload, label="f", ndjson=ndjson)
    records = check_accounting(src)
    if ndjson:
        assert src.tally.records == len(resources)
        assert all(r.position.startswith("line ") for r in records if isinstance(r, Reject))


# -- CSV ---------------------------------------------------------------------------

MAPPING = CsvMapping.model_validate(
    {
        "name": "prop",
        "ts": {"column": "Time"},
        "event_id": {"column": "Id"},
        "type": {
            "column": "Event",
            "values": {"Flush": "pump.flush", "Stop": "pump.infusion_stopped"},
        },
        "fields": {
            "patient_id": {"column": "MRN"},
            "pump_id": {"column": "Pump"},
            "volume_ml": {"column": "Volume", "unit": "mL"},
            "reason": {"column": "Reason", "values": {"User": "user"}},
        },
    }
)
GOOD_CSV = (
    b"Id,Time,Event,MRN,Pump,Volume,Reason\n"
    b"c1,2026-03-02T09:00:00Z,Flush,p1,P,5,\n"
    b'c2,2026-03-02T10:00:00+01:00,Stop,p1,P,,"User"\n'
    b"c3,2026-03-02T11:00:00Z,Flush,p1,P,2.5,\n"
)


def test_the_csv_starting_point_is_read_whole():
    src = CsvSource(data=GOOD_CSV, mapping=MAPPING, label="x.csv")
    assert all(isinstance(r, Event) for r in src)
    assert (src.tally.records, src.tally.events) == (3, 3)


@SETTINGS
@given(ops=st.lists(_op, max_size=5))
def test_damaged_csv_bytes_are_accounted_for(ops):
    src = CsvSource(data=damage(GOOD_CSV, ops), mapping=MAPPING, label="x.csv")
    records = check_accounting(src)
    assert sum(isinstance(r, Event) for r in records) == src.tally.events
    rows = [r for r in records if isinstance(r, Reject) and r.position.startswith("row ")]
    assert all(" (line " in r.position for r in rows)


@SETTINGS
@given(cells=st.lists(st.lists(st.text(max_size=10), min_size=1, max_size=9), max_size=5))
def test_csv_rows_of_any_cells_are_accounted_for(cells):
    import csv
    import io

    text = io.StringIO()
    csv.writer(text).writerows(cells)
    data = GOOD_CSV + text.getvalue().encode("utf-8", errors="surrogatepass")
    src = CsvSource(data=data, mapping=MAPPING, label="x.csv")
    check_accounting(src)
    assert src.tally.records >= 3


def test_a_reject_quoting_half_a_utf16_pair_still_writes_as_json():
    line = Reject("f", "line 1", "value '\ud800' is damaged").to_json()
    assert json.loads(line)["reason"] == "value '\ud800' is damaged"
    line.encode("utf-8")
