"""FHIR R4 resources mapped to pumpguard events, one resource at a time.

Split from ``adapters/fhir.py`` (which reads the files, Bundles and NDJSON and
dispatches each resource here) so each module stays readable. The tables of what
we accept (status, units, classes, grades) live here with the mappers.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pumpguard.adapters.base import Record, Reject
from pumpguard.adapters.common import clip, describe_invalid, make_event, quote
from pumpguard.adapters.timestamps import localize
from pumpguard.adapters.units import UnitError, convert, normalise_unit
from pumpguard.engine.errors import InputError
from pydantic import ValidationError

if TYPE_CHECKING:
    from pumpguard.adapters.fhir import FhirSource

_R5_MARKERS = {
    "MedicationAdministration": ("occurenceDateTime", "occurencePeriod", "occurenceTiming"),
    "Encounter": ("actualPeriod", "virtualService", "admission"),
    "AdverseEvent": ("code", "effectDate"),  # wrong-shaped for R4 AdverseEvent
}
_GRADE = re.compile(r"^\s*(?:grade\s*)?([0-5])\s*$", re.IGNORECASE)
_STATUS_SKIP = {"not-done", "entered-in-error", "unknown", "preparation"}


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
            self._dose_given(drug, ts, patient, dosage, route)
            return
        self._infusion(drug, ts, patient, dosage, period, status)

    def _dose_given(
        self, drug: str, ts: datetime, patient: str, dosage: dict[str, Any], route: str | None
    ) -> None:
        """A premedication (any drug but the infused one): one dose in mg."""
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

    def _infusion(
        self,
        drug: str,
        ts: datetime,
        patient: str,
        dosage: dict[str, Any],
        period: dict[str, Any],
        status: str,
    ) -> None:
        """The infused drug: a start on a pump, and its end when the status says it ended."""
        common = {"patient_id": patient, "pump_id": self._pump(patient, ts)}
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

    def _pump(self, patient: str, ts: datetime) -> str:
        """The named device, else the one pump a configured binding puts on the patient."""
        pump = None
        for dev in self.res.get("device") or []:
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
        return pump

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
