"""CSV mapping, format detection, conversion to canonical JSONL, and the finding sinks."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pumpguard.adapters
import pytest
from pumpguard.adapters.base import Reject
from pumpguard.adapters.common import make_event
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.convert import convert
from pumpguard.adapters.csv_source import CsvMapping, CsvSource
from pumpguard.adapters.detect import detect_format, open_source
from pumpguard.adapters.hl7v2 import Hl7Writer, frame
from pumpguard.adapters.sinks import make_sink, oru_r40
from pumpguard.engine.errors import ParseError
from pumpguard.engine.findings import Finding, RulePackRef

MAPPING = Path(pumpguard.adapters.__file__).parent / "csv_example_vendor.yaml"
HEADER = "Record ID,Event Time,Event,MRN,Pump Serial,Channel,Drug,Container,Rate,Rate Unit,"
HEADER += "Dose Rate,Dose Unit,Volume,VTBI,Stop Reason,Alarm\n"


def write_csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


START_ROW = "r1,2026-03-02T08:00:00+01:00,Infusion Started,p1,PUMP-7,A,blinatumomab,B1,10,mL/h,"
START_ROW += "0.375,mcg/h,,240,,"


class TestCsv:
    """A YAML mapping reads a vendor export; units are converted explicitly."""

    def test_mapped_row_gives_event_with_units_converted(self, tmp_path: Path) -> None:
        (event,) = list(CsvSource(write_csv(tmp_path, START_ROW), CsvMapping.from_yaml(MAPPING)))
        assert event.type == "pump.infusion_started"
        assert event.rate_ml_h == 10.0
        assert event.dose_mcg_day == 9.0  # 0.375 mcg/h
        assert event.source == "example-pump-server"

    def test_unknown_unit_rejects_the_row_with_its_number(self, tmp_path: Path) -> None:
        bad = START_ROW.replace("mL/h", "drops/min")
        records = list(
            CsvSource(write_csv(tmp_path, bad, START_ROW), CsvMapping.from_yaml(MAPPING))
        )
        assert isinstance(records[0], Reject)
        assert records[0].position == "row 2 (line 2)"
        assert "drops/min" in records[0].reason
        assert records[1].type == "pump.infusion_started"

    def test_time_without_offset_is_rejected_unless_a_zone_is_configured(
        self, tmp_path: Path
    ) -> None:
        path = write_csv(tmp_path, START_ROW.replace("+01:00", ""))
        mapping = CsvMapping.from_yaml(MAPPING)
        (reject,) = list(CsvSource(path, mapping))
        assert "no UTC offset" in reject.reason
        config = AdapterConfig(time_zone="Europe/Berlin")
        (event,) = list(CsvSource(path, mapping, config=config))
        assert event.ts.isoformat() == "2026-03-02T08:00:00+01:00"

    def test_vendor_value_not_in_mapping_is_rejected(self, tmp_path: Path) -> None:
        row = "r3,2026-03-02T10:00:00+01:00,Infusion Stopped,p1,PUMP-7,A,,,,,,,,,Gremlins,"
        (reject,) = list(CsvSource(write_csv(tmp_path, row), CsvMapping.from_yaml(MAPPING)))
        assert "'Gremlins' is not in the mapping" in reject.reason

    def test_numeric_field_without_unit_is_refused_in_the_mapping(self) -> None:
        with pytest.raises(ValueError, match="state its 'unit'"):
            CsvMapping.model_validate(
                {
                    "name": "x",
                    "ts": {"column": "t"},
                    "type": {"column": "k"},
                    "fields": {"rate_ml_h": {"column": "r"}},
                }
            )


class TestDetect:
    """The format is told by extension, and by content where the extension is ambiguous."""

    def test_sample_files_are_detected(self, samples: Path) -> None:
        assert detect_format(samples / "adt" / "ADT01-23.hl7") == "hl7"
        assert detect_format(samples / "fhir" / "USCore_Encounter-example-1.json") == "fhir-json"
        name = "HL7FHIR_medicationadministration0302_interim-R5-build_continuous_infusion.xml"
        assert detect_format(samples / "fhir" / name) == "fhir-xml"

    def test_jsonl_is_canonical_or_fhir_ndjson_by_content(self, tmp_path: Path) -> None:
        canonical = tmp_path / "a.jsonl"
        canonical.write_text('{"event_id":"x","type":"encounter.discharged"}\n')
        fhir = tmp_path / "b.ndjson"
        fhir.write_text('{"resourceType":"Encounter"}\n')
        assert detect_format(canonical) == "jsonl"
        assert detect_format(fhir) == "fhir-ndjson"

    def test_mllp_bytes_without_extension_are_hl7(self, tmp_path: Path, ipec: str) -> None:
        path = tmp_path / "capture"
        path.write_bytes(b"\x0b" + ipec.encode() + b"\x1c\r")
        assert detect_format(path) == "hl7"

    def test_unknown_content_raises_parse_error(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.bin"
        path.write_bytes(b"\x00\x01hello")
        with pytest.raises(ParseError, match="format not recognised"):
            open_source(path)

    def test_txt_that_is_not_hl7_raises_parse_error(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello")
        with pytest.raises(ParseError, match="not HL7"):
            open_source(path)

    def test_csv_without_mapping_raises_parse_error(self, tmp_path: Path) -> None:
        with pytest.raises(ParseError, match="column mapping"):
            open_source(write_csv(tmp_path, START_ROW))

    def test_missing_file_raises_parse_error(self, tmp_path: Path) -> None:
        with pytest.raises(ParseError, match="cannot be read"):
            open_source(tmp_path / "absent.hl7")


class TestConvert:
    """convert writes exactly the canonical JSONL the engine sees, rejects beside it."""

    def test_same_course_as_hl7_and_jsonl_converts_to_the_same_lines(self, tmp_path: Path) -> None:
        base = {"patient_id": "p1", "pump_id": "PUMP-7", "source": "MW"}
        specs = [
            {
                "event_id": "e1",
                "type": "pump.infusion_started",
                "ts": "2026-03-02T08:00:00+01:00",
                "drug": "blinatumomab",
                "rate_ml_h": 10.0,
                "dose_mcg_day": 9.0,
                "bag_id": "B1",
            },
            {
                "event_id": "e2",
                "type": "pump.infusion_stopped",
                "ts": "2026-03-02T09:00:00+01:00",
                "reason": "user",
            },
            {
                "event_id": "e3",
                "type": "pump.infusion_resumed",
                "ts": "2026-03-02T14:00:00+01:00",
                "rate_ml_h": 10.0,
            },
        ]
        jsonl = tmp_path / "course.jsonl"
        jsonl.write_text("".join(json.dumps({**base, **s}) + "\n" for s in specs))
        from datetime import datetime

        events = [make_event({**base, **s, "ts": datetime.fromisoformat(s["ts"])}) for s in specs]
        hl7 = tmp_path / "course.hl7"
        hl7.write_text(frame(Hl7Writer().render_all(events), "cr"), newline="")
        outs = []
        for path in (jsonl, hl7):
            out, rej = io.StringIO(), io.StringIO()
            assert convert([path], out, rej) == (3, 0)
            outs.append(out.getvalue())
        assert outs[0] == outs[1]

    def test_rejects_are_written_and_counted_and_events_still_written(
        self, tmp_path: Path, samples: Path
    ) -> None:
        for name in (
            "ihe/IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7",
            "ihe/PIV_PCD-03_RGV_O15_example2_normal_saline_IHE_TF2_Rev8.hl7",
        ):
            shutil.copy(samples / name, tmp_path)
        out, rej = io.StringIO(), io.StringIO()
        written, failed = convert(sorted(tmp_path.iterdir()), out, rej)
        assert (written, failed) == (1, 1)
        line = json.loads(rej.getvalue())
        assert line["position"] == "message 1 (line 1)"
        assert line["source"].endswith("PIV_PCD-03_RGV_O15_example2_normal_saline_IHE_TF2_Rev8.hl7")

    def test_unreadable_input_raises_before_anything_is_written(self, tmp_path: Path) -> None:
        out = io.StringIO()
        with pytest.raises(ParseError):
            convert([tmp_path / "absent.hl7"], out, io.StringIO())
        assert out.getvalue() == ""


FINDING = Finding(
    finding_id="F-0123456789abcdef0123",
    code="LINE_FLUSH",
    rule_id="BLN-NOFLUSH-01",
    severity="critical",
    patient_id="p1",
    ts="2026-03-03T08:05:00Z",
    message="Line flushed with drug in it | 5 mL",
    action="Do not flush the line",
    evidence=["p1-0003", "p1-0004"],
    citation="Label 2.4",
    rule_pack=RulePackRef(name="blincyto", version="1", sha256="x", edition="seed"),
    requirement="R1",
)


class TestSinks:
    """Findings reach a log, an alarm manager (ORU^R40) and an EHR (DetectedIssue)."""

    def test_structlog_sink_logs_at_severity_level(self) -> None:
        stream = io.StringIO()
        make_sink("structlog", stream).write(FINDING)
        line = json.loads(stream.getvalue())
        assert (line["event"], line["level"], line["code"]) == ("finding", "critical", "LINE_FLUSH")

    def test_hl7_alert_is_an_acm_oru_r40_with_high_priority(self) -> None:
        segments = oru_r40(FINDING).split("\r")
        assert "|ORU^R40^ORU_R40|" in segments[0]
        assert "IHE_PCD_ACM_001" in segments[0]
        assert "196616^MDC_EVT_ALARM^MDC" in segments[2]
        assert any("MDC_ATTR_ALARM_PRIORITY" in s and "|PH|" in s for s in segments)
        assert any("Line flushed with drug in it \\F\\ 5 mL" in s for s in segments)

    def test_hl7_sink_frames_with_mllp(self) -> None:
        stream = io.StringIO()
        make_sink("hl7", stream).write(FINDING)
        assert stream.getvalue().startswith("\x0bMSH|")
        assert stream.getvalue().endswith("\x1c\r")

    def test_fhir_sink_writes_one_valid_r4_detected_issue_per_line(self) -> None:
        from fhir.resources.R4B.detectedissue import DetectedIssue

        stream = io.StringIO()
        make_sink("fhir", stream).write(FINDING)
        resource = json.loads(stream.getvalue())
        DetectedIssue.model_validate(resource)
        assert (resource["severity"], resource["patient"]["reference"]) == ("high", "Patient/p1")

    def test_unknown_sink_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown sink"):
            make_sink("pager", io.StringIO())


class TestConfigFile:
    """The adapter config loads from YAML; mapping paths are relative to the file."""

    def test_from_yaml_reads_bindings_zone_and_csv_mappings(self, tmp_path: Path) -> None:
        shutil.copy(MAPPING, tmp_path / "vendor.yaml")
        config_path = tmp_path / "feed.yaml"
        config_path.write_text(
            "time_zone: Europe/Berlin\n"
            "csv_mappings: [vendor.yaml]\n"
            "bindings:\n"
            "  - {pump_id: PUMP-7, patient_id: p1, from: '2026-03-01T00:00:00Z'}\n"
        )
        config = AdapterConfig.from_yaml(config_path)
        assert config.csv_mappings == [tmp_path / "vendor.yaml"]
        assert config.bindings[0].valid_from is not None
        (event,) = list(open_source(write_csv(tmp_path, START_ROW), config))
        assert event.patient_id == "p1"

    def test_unknown_time_zone_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown time zone"):
            AdapterConfig(time_zone="Mars/Olympus")


def csv_source(data: bytes, mapping: CsvMapping | None = None) -> tuple[list, CsvSource]:
    src = CsvSource(data=data, mapping=mapping or CsvMapping.from_yaml(MAPPING), label="x.csv")
    return list(src), src


class TestCsvFates:
    """Every row ends as an event or a reject naming its row and physical line."""

    def test_a_latin1_byte_rejects_its_row_when_no_encoding_is_declared(self) -> None:
        bad = START_ROW.replace("B1", "B\xe9").encode("latin-1")
        records, src = csv_source(HEADER.encode() + bad + b"\n" + START_ROW.encode() + b"\n")
        assert records[0].position == "row 2 (line 2)"
        assert "byte 0xe9 in column 'Container' is not utf-8" in records[0].reason
        assert (src.tally.events, src.tally.rejected) == (1, 1)

    def test_a_declared_encoding_is_honoured(self) -> None:
        mapping = CsvMapping.from_yaml(MAPPING).model_copy(update={"encoding": "latin-1"})
        data = (HEADER + START_ROW.replace("B1", "B\xe9") + "\n").encode("latin-1")
        (event,), _ = csv_source(data, mapping)
        assert event.bag_id == "B\xe9"

    def test_an_unknown_encoding_is_refused_in_the_mapping(self) -> None:
        with pytest.raises(ValueError, match="unknown encoding"):
            CsvMapping.model_validate(
                {"name": "x", "encoding": "klingon", "ts": {"column": "t"}, "type": {"column": "k"}}
            )

    def test_a_cell_over_128_kb_rejects_its_row_only(self) -> None:
        huge = START_ROW.replace("B1", '"' + "b\n" * 70_000 + '"')
        records, src = csv_source((HEADER + huge + "\n" + START_ROW + "\n").encode())
        assert "field larger than field limit" in records[0].reason
        assert records[1].event_id == "r1"
        assert src.position == "row 3 (line 70003)"
        assert (src.tally.records, src.tally.events, src.tally.rejected) == (2, 1, 1)

    def test_position_names_the_physical_line_a_row_starts_on(self) -> None:
        multi = START_ROW.replace("B1", '"B\n1"')
        bad = START_ROW.replace("mL/h", "drops/min")
        records, _ = csv_source((HEADER + multi + "\n\n" + bad + "\n").encode())
        assert records[1].position == "row 3 (line 5)"

    def test_empty_file_is_one_reject_naming_the_file(self) -> None:
        (reject,), src = csv_source(b"")
        assert (reject.source, reject.position) == ("x.csv", "line 1")
        assert src.tally.records == 0

    def test_header_split_by_another_delimiter_is_one_reject_counting_its_rows(self) -> None:
        config = AdapterConfig(csv_mappings=[MAPPING])
        data = (HEADER + START_ROW + "\n" + START_ROW + "\n").replace(",", ";").encode()
        src = CsvSource(data=data, config=config, label="x.csv")
        (reject,) = list(src)
        assert "is the delimiter wrong?" in reject.reason
        assert (src.tally.records, src.tally.rejected) == (2, 2)

    def test_a_mapping_is_chosen_by_its_own_delimiter(self, tmp_path: Path) -> None:
        semi = tmp_path / "semi.yaml"
        semi.write_text(MAPPING.read_text().replace('delimiter: ","', 'delimiter: ";"'))
        config = AdapterConfig(csv_mappings=[semi])
        data = (HEADER + START_ROW + "\n").replace(",", ";").encode()
        (event,) = list(CsvSource(data=data, config=config, label="x.csv"))
        assert event.rate_ml_h == 10.0

    def test_a_row_that_does_not_fit_the_header_is_refused(self) -> None:
        records, _ = csv_source((HEADER + START_ROW + ",extra\n").encode())
        assert "row has 17 cells, the header 16" in records[0].reason

    def test_a_mapping_that_does_not_load_is_refused_when_the_source_opens(
        self, tmp_path: Path
    ) -> None:
        broken = tmp_path / "broken.yaml"
        broken.write_text("name: x\n")
        with pytest.raises(ParseError, match="does not load"):
            CsvSource(data=b"", config=AdapterConfig(csv_mappings=[broken]))


class TestDetectContent:
    """Content decides where the extension does not, and a broken file goes to its reader."""

    def test_json_lines_named_txt_are_jsonl(self, tmp_path: Path) -> None:
        path = tmp_path / "events.txt"
        path.write_text('{"event_id": "x"}\n')
        assert detect_format(path) == "jsonl"

    def test_hl7_capture_with_prose_before_the_first_msh_is_hl7(self, tmp_path: Path) -> None:
        path = tmp_path / "capture.txt"
        path.write_bytes(b"Captured on ward 4\r\nMSH|^~\\&|A|B\r")
        assert detect_format(path) == "hl7"

    def test_hl7_extension_is_hl7_whatever_comes_first(self, tmp_path: Path) -> None:
        path = tmp_path / "capture.hl7"
        path.write_text("junk\n")
        assert detect_format(path) == "hl7"

    def test_broken_json_document_is_left_to_its_reader(self, tmp_path: Path) -> None:
        path = tmp_path / "events.json"
        path.write_text("[" * 10000)
        assert detect_format(path) == "json"
        (reject,) = list(open_source(path))
        assert "nested too deeply" in reject.reason

    def test_empty_file_opens_as_one_reject(self, tmp_path: Path) -> None:
        path = tmp_path / "events.jsonl"
        path.write_bytes(b"\xef\xbb\xbf \n")
        (reject,) = list(open_source(path))
        assert reject.reason.startswith("empty file")


class TestConvertIsolation:
    """A source that fails costs the rest of that source; the other inputs are converted."""

    def test_failing_source_becomes_a_reject_and_the_next_input_is_converted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from pumpguard.adapters.jsonl import JsonlSource

        first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        line = '{"event_id":"e1","type":"encounter.discharged","ts":"2026-03-02T08:00:00Z",'
        first.write_text(line + '"patient_id":"p1"}\n')
        second.write_text(line.replace("e1", "e2") + '"patient_id":"p1"}\n')
        original = JsonlSource.__iter__

        def fail_on_a(self: JsonlSource):  # type: ignore[no-untyped-def]
            if self.label.endswith("a.jsonl"):
                self.position = "line 1"
                raise MemoryError("simulated")
            yield from original(self)

        monkeypatch.setattr(JsonlSource, "__iter__", fail_on_a)
        out, rej = io.StringIO(), io.StringIO()
        summary: list[dict[str, object]] = []
        assert convert([first, second], out, rej, summary=summary) == (1, 1)
        assert json.loads(rej.getvalue())["position"] == "line 1"
        assert summary[1]["events"] == 1


def test_fhir_ndjson_with_a_broken_first_line_is_still_fhir(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_text("[" * 10000 + "\n" + '{"resourceType": "Encounter"}\n')
    assert detect_format(path) == "fhir-ndjson"
