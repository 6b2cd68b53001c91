"""One policy for times without a UTC offset, the same in HL7, CSV and FHIR.

Europe/Berlin: 2026-03-29 02:30 never happened (gap), 2026-10-25 02:30 happened twice (fold).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pumpguard.adapters
import pytest
from pumpguard.adapters.base import Reject
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.csv_source import CsvMapping, CsvSource
from pumpguard.adapters.fhir import FhirSource
from pumpguard.adapters.hl7v2 import Hl7Source, parse_dtm
from pumpguard.adapters.timestamps import in_utc_range, localize
from pumpguard.engine.errors import ParseError

BERLIN = ZoneInfo("Europe/Berlin")
CONFIG = AdapterConfig(time_zone="Europe/Berlin")
GAP, FOLD, PLAIN = "2026-03-29T02:30:00", "2026-10-25T02:30:00", "2026-03-02T08:00:00"
MAPPING = Path(pumpguard.adapters.__file__).parent / "csv_example_vendor.yaml"
HEADER = "Record ID,Event Time,Event,MRN,Pump Serial,Channel,Drug,Container,Rate,Rate Unit,"
HEADER += "Dose Rate,Dose Unit,Volume,VTBI,Stop Reason,Alarm\n"
ROW = "r1,{ts},Infusion Started,p1,PUMP-7,A,blinatumomab,B1,10,mL/h,0.375,mcg/h,,240,,"


def naive(text: str) -> datetime:
    return datetime.fromisoformat(text)


def only(records: list[Any]) -> Any:
    (record,) = records
    return record


def hl7(ipec: str, local: str, config: AdapterConfig | None = CONFIG) -> Any:
    dtm = local.replace("-", "").replace("T", "").replace(":", "")
    return only(
        list(Hl7Source(data=ipec.replace("20151015132106-0500", dtm).encode(), config=config))
    )


def csv(tmp_path: Path, local: str, config: AdapterConfig | None = CONFIG) -> Any:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + ROW.format(ts=local) + "\n", encoding="utf-8")
    return only(list(CsvSource(path, CsvMapping.from_yaml(MAPPING), config=config)))


def fhir(local: str, config: AdapterConfig | None = CONFIG) -> Any:
    resource = {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "in-progress",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "L01FX07"}]
        },
        "subject": {"reference": "Patient/p1"},
        "device": [{"reference": "Device/PUMP-7"}],
        "effectivePeriod": {"start": local},
        "dosage": {
            "rateQuantity": {
                "value": 10,
                "unit": "mL/h",
                "system": "http://unitsofmeasure.org",
                "code": "mL/h",
            }
        },
    }
    return only(list(FhirSource(data=json.dumps(resource).encode(), label="f", config=config)))


class TestLocalize:
    """The policy itself: one instant or a reject with the reason, never a guess."""

    def test_plain_local_time_gets_the_zone_offset(self) -> None:
        """A time the zone gives one instant keeps that fixed offset."""
        assert localize(naive(PLAIN), BERLIN, "t").isoformat() == "2026-03-02T08:00:00+01:00"

    def test_gap_is_rejected(self) -> None:
        """Clocks went forward: the time never happened, it is not moved."""
        with pytest.raises(ParseError, match="does not exist in Europe/Berlin"):
            localize(naive(GAP), BERLIN, "t")

    def test_fold_is_rejected(self) -> None:
        """Clocks went back: the time happened twice, neither is chosen."""
        with pytest.raises(ParseError, match="ambiguous in Europe/Berlin"):
            localize(naive(FOLD), BERLIN, "t")

    def test_no_zone_is_rejected(self) -> None:
        """No offset and no configured zone: not UTC, not the host's zone."""
        with pytest.raises(ParseError, match="no UTC offset and the feed configuration names no"):
            localize(naive(PLAIN), None, "t")

    def test_out_of_range_year_is_rejected(self) -> None:
        """Year 1 at 00:30 in Berlin is in year 0 in UTC: nothing downstream can order it."""
        with pytest.raises(ParseError, match="outside years 1 to 9999"):
            localize(naive("0001-01-01T00:30:00"), BERLIN, "t")
        with pytest.raises(ParseError, match="outside years 1 to 9999"):
            in_utc_range(datetime.fromisoformat("9999-12-31T23:30:00-01:00"), "t")

    def test_hl7_dtm_uses_the_same_policy(self) -> None:
        """parse_dtm hands a time without offset to the one policy."""
        with pytest.raises(ParseError, match="does not exist"):
            parse_dtm("202603290230", BERLIN, "OBR-7")


@pytest.mark.parametrize(
    ("local", "config", "says"),
    [
        (GAP, CONFIG, "does not exist in Europe/Berlin (clocks went forward)"),
        (FOLD, CONFIG, "ambiguous in Europe/Berlin (clocks went back); never guessed"),
        (PLAIN, None, "has no UTC offset"),
        ("0001-01-01T00:30:00", CONFIG, "outside years 1 to 9999"),
    ],
    ids=["gap", "fold", "no-zone", "year-out-of-range"],
)
class TestReaders:
    """HL7 and CSV reject the same local times for the same reasons."""

    def test_hl7(self, ipec: str, local: str, config: AdapterConfig | None, says: str) -> None:
        """OBR-7 without offset."""
        reject = hl7(ipec, local, config)
        assert isinstance(reject, Reject)
        assert says in reject.reason

    def test_csv(self, tmp_path: Path, local: str, config: AdapterConfig | None, says: str) -> None:
        """A CSV time column without offset (the gap was accepted before: now rejected)."""
        reject = csv(tmp_path, local, config)
        assert isinstance(reject, Reject)
        assert says in reject.reason


def test_fhir_r4_refuses_a_time_without_offset_before_the_policy() -> None:
    """FHIR R4 requires an offset on a dateTime with a time: the model rejects it first.

    FhirSource still sends any time without offset through the one policy (defence in
    depth for shapes the model lets through); today no validated resource reaches it.
    """
    for local in (GAP, FOLD, PLAIN):
        reject = fhir(local)
        assert isinstance(reject, Reject)
        assert "effectivePeriod.start" in reject.reason


def test_readers_agree_on_a_plain_local_time(ipec: str, tmp_path: Path) -> None:
    """Outside gaps and folds, HL7 and CSV give the zone's fixed offset."""
    for event in (hl7(ipec, PLAIN), csv(tmp_path, PLAIN)):
        assert event.ts.isoformat() == "2026-03-02T08:00:00+01:00"
