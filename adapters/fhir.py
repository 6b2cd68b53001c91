"""FHIR R4 in: MedicationAdministration, Encounter, AdverseEvent and graded Observations.

Resources come one per file, in a Bundle, or as NDJSON. Each is validated with
fhir.resources' R4B models (fhir.resources defaults to R5, and R4 has no package
of its own), then mapped. The models do not check terminology, so what we read
(status, units, classes, grades) is checked here against explicit tables.

R5-shaped resources are common in current examples (US Core's Encounter has
``class`` as a list and ``actualPeriod``). An Encounter in that shape is read
with the R5 model and a warning says so; other R5 shapes are rejected, naming
the elements that gave them away.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pumpguard.adapters.base import BytesSource, EventSource, Record, Reject, Tally, fate_of
from pumpguard.adapters.common import (
    clip,
    describe_invalid,
    json_kind,
    load_json,
    load_json_document,
    lone_surrogate,
    make_event,
    quote,
)
from pumpguard.adapters.config import AdapterConfig, Binder
from pumpguard.adapters.timestamps import localize
from pumpguard.adapters.units import UnitError, convert, normalise_unit
from pumpguard.engine.errors import InputError, ParseError
from pydantic import ValidationError

__all__ = ["FhirSource", "FhirXmlSource", "is_fhir_json"]

_R5_MARKERS = {
    "MedicationAdministration": ("occurenceDateTime", "occurencePeriod", "occurenceTiming"),
    "Encounter": ("actualPeriod", "virtualService", "admission"),
    "AdverseEvent": ("code", "effectDate"),  # wrong-shaped for R4 AdverseEvent
}
_GRADE = re.compile(r"^\s*(?:grade\s*)?([0-5])\s*$", re.IGNORECASE)
_STATUS_SKIP = {"not-done", "entered-in-error", "unknown", "preparation"}


def is_fhir_json(obj: Any) -> bool:
    """True for a decoded JSON object that is a FHIR resource."""
    return isinstance(obj, dict) and isinstance(obj.get("resourceType"), str)


def _ref_id(ref: Any, kind: str) -> str | None:
    if not isinstance(ref, dict):
        return None
    text = ref.get("reference")
    if isinstance(text, str) and text:
        return text.rsplit("/", 1)[-1] if text.startswith(kind + "/") or "/" in text else text
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return str(ident["value"])
    return None


def _codings(concept: Any) -> tuple[list[str], list[str]]:
    """(codes as "system|code" and bare code, names) of a CodeableConcept."""
    codes: list[str] = []
    names: list[str] = []
    if not isinstance(concept, dict):
        return codes, names
    for c in concept.get("coding") or []:
        if c.get("code"):
            codes += [f"{c.get('system', '')}|{c['code']}", str(c["code"])]
        if c.get("display"):
            names.append(str(c["display"]))
    if concept.get("text"):
        names.insert(0, str(concept["text"]))
    return codes, names


def _name(concept: Any) -> str | None:
    codes, names = _codings(concept)
    return names[0] if names else (codes[1] if len(codes) > 1 else None)


class FhirSource(BytesSource):
    """FHIR JSON: a resource, a Bundle, or NDJSON (one resource a line)."""

    name = "fhir"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        data: bytes | None = None,
        label: str | None = None,
        config: AdapterConfig | None = None,
        ndjson: bool | None = None,
    ) -> None:
        super().__init__(path, data=data, label=label)
        self.config = config or AdapterConfig()
        self.binder = Binder(self.config)
        self.ndjson = ndjson

    def __iter__(self) -> Iterator[Record]:
        self.tally = Tally()
        raw = self.read_bytes()
        ndjson = self.ndjson
        if ndjson is None:
            ndjson = self.path is not None and self.path.suffix.lower() in (".ndjson", ".jsonl")
        if ndjson:
            yield from self._lines(raw)
            return
        self.position = "document"
        try:
            obj = load_json_document(raw)
        except ParseError as exc:
            obj = exc
        if isinstance(obj, ParseError):
            yield from self._count([Reject(self.label, obj.position or "document", obj.message)])
            return
        if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
            yield from self._bundle(obj)
            return
        self.position = "resource 1"
        yield from self._count(self._one(obj, "resource 1"))

    def _lines(self, raw: bytes) -> Iterator[Record]:
        """NDJSON: each line is one record, decoded on its own so one bad byte costs one line."""
        for lineno, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            self.position = position = f"line {lineno}"
            try:
                text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
                obj = load_json(text)
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8: {exc.reason} at byte {exc.start}"
                yield from self._count([Reject(self.label, position, reason)])
                continue
            except ParseError as exc:
                yield from self._count([Reject(self.label, position, exc.message)])
                continue
            yield from self._count(self._one(obj, position))

    def _bundle(self, bundle: dict[str, Any]) -> Iterator[Record]:
        """One record per entry; a Bundle without a usable entry list is one record."""
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            reason = f"Bundle.entry is {json_kind(entries)}, not a list of entries"
            yield from self._count([Reject(self.label, "Bundle.entry", reason)])
            return
        if not entries:
            warning = Reject(self.label, "Bundle", "Bundle has no entries", level="warning")
            yield from self._count([warning])
            return
        for i, entry in enumerate(entries, start=1):
            self.position = position = f"entry {i}"
            if not isinstance(entry, dict):
                reason = f"Bundle entry is {json_kind(entry)}, not an object"
                yield from self._count([Reject(self.label, position, reason)])
                continue
            url = entry.get("fullUrl")
            url = url if isinstance(url, str) else None
            yield from self._count(self._one(entry.get("resource"), position, url))

    def _count(self, records: list[Record]) -> list[Record]:
        self.tally.note(fate_of(records))
        return records

    # ------------------------------------------------------------------ dispatch

    def _one(self, obj: Any, position: str, full_url: str | None = None) -> list[Record]:
        if not is_fhir_json(obj):
            return [Reject(self.label, position, "not a FHIR resource (no resourceType)")]
        damaged = lone_surrogate(obj) or lone_surrogate(full_url)
        if damaged is not None:
            return [Reject(self.label, position, damaged)]
        try:
            return _Mapper(self, obj, position, full_url).run()
        except InputError as exc:
            return [Reject(self.label, position, exc.message)]
        except Exception as exc:
            # A shape the mapper did not foresee: one resource lost, said loudly, the
            # rest of the file still read. Never a silent skip, never the whole run.
            reason = (
                f"{clip(obj['resourceType'])} could not be mapped: {type(exc).__name__}: "
                f"{quote(str(exc))} (a defect in pumpguard; please report it)"
            )
            return [Reject(self.label, position, reason)]


class _Mapper:
    """One resource → records."""

    def __init__(self, src: FhirSource, res: dict[str, Any], position: str, url: str | None):
        self.src, self.res, self.position = src, res, position
        self.kind: str = res["resourceType"]
        self.config = src.config
        self.records: list[Record] = []
        if res.get("id"):
            self.base_id = f"{self.kind}/{res['id']}"
        elif url:
            self.base_id = url
        else:
            digest = hashlib.sha256(json.dumps(res, sort_keys=True).encode()).hexdigest()[:16]
            self.base_id = f"{self.kind}/sha256-{digest}"
        self.count = 0

    def run(self) -> list[Record]:
        handler = {
            "MedicationAdministration": self._medication,
            "Encounter": self._encounter,
            "AdverseEvent": self._adverse_event,
            "Observation": self._observation,
        }.get(self.kind)
        if handler is None:
            raise InputError(f"FHIR {clip(self.kind)} is not a resource pumpguard reads")
        handler()
        return self.records

    def warn(self, reason: str) -> None:
        self.records.append(Reject(self.src.label, self.position, reason, level="warning"))

    def emit(self, data: dict[str, Any]) -> None:
        event_id = self.base_id if self.count == 0 else f"{self.base_id}#{self.count + 1}"
        self.count += 1
        data = {"event_id": event_id, **data}
        data = {k: v for k, v in data.items() if v is not None}
        try:
            self.records.append(make_event(data))
        except ValidationError as exc:
            reason = f"{data['type']}: {describe_invalid(exc)}"
            self.records.append(Reject(self.src.label, self.position, reason, event_id=event_id))

    def validate(self, release: str = "R4B") -> None:
        """Check the resource against the fhir.resources model; any failure is a reject."""
        module = "fhir.resources.R4B" if release == "R4B" else "fhir.resources"
        try:
            mod = __import__(f"{module}.{self.kind.lower()}", fromlist=[self.kind])
            getattr(mod, self.kind).model_validate(self.res)
        except ValidationError as exc:
            problems = "; ".join(
                f"{clip('.'.join(str(p) for p in e['loc']), 80)}: {clip(e['msg'], 120)}"
                for e in exc.errors(include_url=False)[:3]
            )
            name = "R4" if release == "R4B" else "R5"
            msg = f"not a valid FHIR {name} {self.kind}: {problems}"
            raise InputError(msg) from exc
        except Exception as exc:  # fhir.resources raises non-pydantic errors too (research §3)
            msg = f"not a valid FHIR {self.kind}: {type(exc).__name__}: {clip(str(exc))}"
            raise InputError(msg) from exc

    def check_r5(self) -> None:
        found = [k for k in _R5_MARKERS.get(self.kind, ()) if k in self.res]
        if self.kind == "MedicationAdministration" and isinstance(self.res.get("medication"), dict):
            found.append("medication (CodeableReference)")
        if found:
            msg = (
                f"{self.kind} is R5-shaped ({', '.join(found)}); this feed reads FHIR R4 — "
                "send the R4 form"
            )
            raise InputError(msg)

    def patient(self) -> str:
        pid = _ref_id(self.res.get("subject"), "Patient")
        if pid is None:
            raise InputError(f"{self.kind} has no subject reference naming the patient")
        return pid

    def dt(self, value: Any, what: str) -> datetime:
        if not isinstance(value, str) or len(value) < 16:
            msg = f"{what} {quote(value)} is not a dateTime with a time of day"
            raise InputError(msg)
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            msg = f"{what} {quote(value)} is not a valid dateTime"
            raise InputError(msg) from exc
        if ts.tzinfo is None:
            ts = localize(ts, self.config.zone, f"{what} {quote(value)}")
        return ts

    # ------------------------------------------------------------------ resources

    def _medication(self) -> None:
        self.check_r5()
        self.validate()
        res = self.res
        status = res.get("status", "")
        if status in _STATUS_SKIP:
            raise InputError(f"MedicationAdministration status {quote(status)}: nothing to report")
        patient = self.patient()
        codes, names = self._medication_codes()
        drug = self.config.drug_name(codes, names) or (names[0] if names else None)
        if drug is None:
            raise InputError("MedicationAdministration names no medication (code or text)")
        period = res.get("effectivePeriod") or {}
        start_raw = res.get("effectiveDateTime") or period.get("start")
        ts = self.dt(start_raw, "effective time")
        dosage = res.get("dosage") or {}
        route = _name(dosage.get("route"))
        if drug != self.config.infusion_drug:
            dose = dosage.get("dose")
            if not isinstance(dose, dict) or dose.get("value") is None:
                raise InputError(f"{drug} administration has no dosage.dose")
            unit = normalise_unit(str(dose.get("code", "")), str(dose.get("unit", "")))
            try:
                dose_mg = convert(float(dose["value"]), unit or "?", "mg")
            except UnitError as exc:
                msg = f"{drug} dose unit {quote(dose.get('code') or dose.get('unit'))}: {exc}"
                raise InputError(msg) from exc
            self.emit(
                {
                    "type": "medication.administered",
                    "ts": ts,
                    "patient_id": patient,
                    "drug": drug,
                    "dose_mg": dose_mg,
                    "route": route,
                }
            )
            return
        pump = None
        for dev in res.get("device") or []:
            pump = _ref_id(dev, "Device")
            if pump:
                break
        pump = pump or self.src.binder.pump_for(patient, ts)
        if pump is None:
            raise InputError(
                f"{self.config.infusion_drug} administration names no pump (device) and no "
                f"configured binding puts exactly one pump on patient {patient} at "
                f"{ts.isoformat()}"
            )
        common = {"patient_id": patient, "pump_id": pump}
        self.emit(
            {
                "type": "pump.infusion_started",
                "ts": ts,
                **common,
                "drug": drug,
                "rate_ml_h": self._rate(dosage),
            }
        )
        end = period.get("end")
        if end and status in ("completed", "stopped", "on-hold"):
            end_ts = self.dt(end, "effectivePeriod.end")
            if status == "completed":
                self.emit({"type": "pump.infusion_completed", "ts": end_ts, **common})
            else:
                reason = "user" if status == "on-hold" else "other"
                self.emit(
                    {"type": "pump.infusion_stopped", "ts": end_ts, **common, "reason": reason}
                )

    def _medication_codes(self) -> tuple[list[str], list[str]]:
        res = self.res
        if "medicationCodeableConcept" in res:
            return _codings(res["medicationCodeableConcept"])
        ref = (res.get("medicationReference") or {}).get("reference", "")
        if ref.startswith("#"):
            for contained in res.get("contained") or []:
                if contained.get("id") == ref[1:] and contained.get("resourceType") == "Medication":
                    codes, names = _codings(contained.get("code"))
                    for ing in contained.get("ingredient") or []:
                        c, n = _codings(ing.get("itemCodeableConcept"))
                        codes += c
                        names += n
                    return codes, names
        msg = f"medicationReference {quote(ref)} cannot be resolved inside the resource"
        raise InputError(msg)

    def _rate(self, dosage: dict[str, Any]) -> float:
        if "rateQuantity" in dosage:
            q = dosage["rateQuantity"]
            unit = normalise_unit(str(q.get("code", "")), str(q.get("unit", "")))
            try:
                return convert(float(q["value"]), unit or "?", "mL/h")
            except (UnitError, KeyError, TypeError) as exc:
                msg = f"dosage.rateQuantity {quote(q)} is not a rate in mL/h terms: {exc}"
                raise InputError(msg) from exc
        if "rateRatio" in dosage:
            num = dosage["rateRatio"].get("numerator") or {}
            den = dosage["rateRatio"].get("denominator") or {}
            try:
                volume = convert(
                    float(num["value"]), normalise_unit(str(num.get("code"))) or "?", "mL"
                )
                hours = convert(
                    float(den["value"]), normalise_unit(str(den.get("code"))) or "?", "h"
                )
            except (UnitError, KeyError, TypeError) as exc:
                msg = f"dosage.rateRatio is not volume per time: {exc}"
                raise InputError(msg) from exc
            if hours <= 0:
                raise InputError("dosage.rateRatio has a zero time denominator")
            return round(volume / hours, 9)
        drug = self.config.infusion_drug
        msg = f"{drug} administration has no dosage rate (rateQuantity/rateRatio)"
        raise InputError(msg)

    def _encounter(self) -> None:
        res = self.res
        r5 = isinstance(res.get("class"), list) or "actualPeriod" in res
        if r5:
            self.validate("R5")
            self.warn("Encounter is R5-shaped (class list, actualPeriod); read with the R5 model")
            classes = res.get("class") or []
            codes = _codings(classes[0])[0] if classes else []
            code = codes[1] if len(codes) > 1 else ""
            period = res.get("actualPeriod") or {}
        else:
            self.validate()
            code = (res.get("class") or {}).get("code", "")
            period = res.get("period") or {}
        status = res.get("status", "")
        if status in ("planned", "cancelled", "entered-in-error", "unknown"):
            raise InputError(f"Encounter status {quote(status)}: no encounter event")
        setting = self.config.fhir_encounter_class.get(code)
        if setting is None:
            raise InputError(
                f"Encounter class {quote(code or '(none)')} maps to no setting; add it to "
                "fhir_encounter_class in the adapter config (never guessed)"
            )
        patient = self.patient()
        start = self.dt(period.get("start"), "Encounter period.start")
        locations = []
        for loc in res.get("location") or []:
            name = (loc.get("location") or {}).get("display") or _ref_id(loc.get("location"), "")
            when = (loc.get("period") or {}).get("start")
            locations.append((self.dt(when, "location period.start") if when else start, name))
        locations.sort(key=lambda x: x[0])
        first = locations[0][1] if locations else None
        common = {"patient_id": patient}
        self.emit(
            {
                "type": "encounter.admitted",
                "ts": start,
                **common,
                "setting": setting.value,
                "location": first,
            }
        )
        for when, name in locations[1:]:
            self.emit(
                {
                    "type": "encounter.transferred",
                    "ts": when,
                    **common,
                    "setting": setting.value,
                    "location": name,
                }
            )
        if period.get("end") and status in ("finished", "completed", "discharged"):
            end = self.dt(period["end"], "Encounter period.end")
            self.emit({"type": "encounter.discharged", "ts": end, **common})

    def _category(self, concepts: list[Any]) -> tuple[str, str | None] | None:
        for concept in concepts:
            codes, names = _codings(concept)
            lowered = [n.lower() for n in names]
            for category, keys in self.config.adverse_event_terms.items():
                for key in keys:
                    if key in codes or any(key.lower() in n for n in lowered):
                        return category, (names[0] if names else None)
        return None

    def _adverse_event(self) -> None:
        self.check_r5()
        self.validate()
        res = self.res
        found = self._category([res.get("event")])
        if found is None:
            raise InputError(
                f"AdverseEvent {quote(_name(res.get('event')) or '(no event code)')} is not a "
                "reaction category pumpguard tracks (adverse_event_terms)"
            )
        grade = self._grade_from_extensions(res) or self._grade_from_concept(res.get("severity"))
        if grade is None:
            raise InputError(
                "AdverseEvent carries no CTCAE/ASTCT grade (an extension or a severity coded 0-5); "
                "mild/moderate/severe is not a grade and is not converted"
            )
        ts = self.dt(res.get("date") or res.get("detected"), "AdverseEvent date")
        self.emit(
            {
                "type": "clinical.adverse_event",
                "ts": ts,
                "patient_id": self.patient(),
                "category": found[0],
                "grade": grade,
                "term": found[1],
            }
        )

    def _grade_from_extensions(self, res: dict[str, Any]) -> int | None:
        for ext in res.get("extension") or []:
            url = str(ext.get("url", "")).lower()
            if "grade" not in url and "ctcae" not in url:
                continue
            if isinstance(ext.get("valueInteger"), int):
                return int(ext["valueInteger"])
            grade = self._grade_from_concept(ext.get("valueCodeableConcept"))
            if grade is not None:
                return grade
        return None

    def _grade_from_concept(self, concept: Any) -> int | None:
        codes, names = _codings(concept)
        for text in [*codes[1::2], *names]:
            m = _GRADE.match(text)
            if m:
                return int(m.group(1))
        return None

    def _observation(self) -> None:
        self.validate()
        res = self.res
        found = self._category([res.get("code")])
        if found is None:
            raise InputError(
                f"Observation {quote(_name(res.get('code')) or '(no code)')} carries no graded "
                "reaction; not an event"
            )
        grade: int | None = None
        if isinstance(res.get("valueInteger"), int):
            grade = int(res["valueInteger"])
        elif "valueCodeableConcept" in res:
            grade = self._grade_from_concept(res["valueCodeableConcept"])
        elif isinstance(res.get("valueString"), str):
            m = _GRADE.match(res["valueString"])
            grade = int(m.group(1)) if m else None
        if grade is None:
            raise InputError(f"Observation {quote(found[1])} has no grade 0-5 in its value")
        if res.get("status") in ("entered-in-error", "cancelled", "preliminary"):
            raise InputError(f"Observation status {quote(res['status'])}: not a documented grade")
        when = res.get("effectiveDateTime") or (res.get("effectivePeriod") or {}).get("start")
        self.emit(
            {
                "type": "clinical.adverse_event",
                "ts": self.dt(when or res.get("issued"), "Observation effective time"),
                "patient_id": self.patient(),
                "category": found[0],
                "grade": grade,
                "term": found[1],
            }
        )


class FhirXmlSource(EventSource):
    """FHIR XML is not read in v1: fhir.resources needs lxml for it, which we do not ship.

    The file still gets one clear reject naming the resource, and when the
    resource mixes R4 and R5 element names (an interim build) the reject says so.
    """

    name = "fhir-xml"

    def __init__(self, path: str | Path, *, label: str | None = None) -> None:
        self.path = Path(path)
        self.label = label or str(path)
        self.tally = Tally()

    def __iter__(self) -> Iterator[Record]:
        # The document is one record, and it is always rejected (with the best reason).
        self.tally = Tally()
        self.tally.note("reject")
        self.position = "document"
        try:
            root = ElementTree.fromstring(self.path.read_bytes())
        except ElementTree.ParseError as exc:
            yield Reject(self.label, "document", f"not well-formed XML: {clip(str(exc))}")
            return
        kind = clip(root.tag.rsplit("}", 1)[-1], 80)
        children = {child.tag.rsplit("}", 1)[-1] for child in root}
        reason = (
            f"FHIR XML ({kind}) is not read: pumpguard reads FHIR JSON (the XML parser of "
            "fhir.resources needs lxml, not a dependency); convert it to JSON"
        )
        r4 = children & {
            "medicationReference",
            "medicationCodeableConcept",
            "context",
            "reasonCode",
        }
        r5 = children & {"encounter", "occurenceDateTime", "occurencePeriod", "medication"}
        if kind == "MedicationAdministration" and r4 and r5:
            reason += (
                f". It also mixes R5 elements ({', '.join(sorted(r5))}) with R4 ones "
                f"({', '.join(sorted(r4))}): an interim build that is neither R4 nor R5"
            )
        yield Reject(self.label, "document", reason)
