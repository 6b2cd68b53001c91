"""Withdrawal renderings: the end of the finding's ACM alert, and its DetectedIssue in error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import hl7
import pytest
from fhir.resources.R4B.detectedissue import DetectedIssue
from pumpguard.adapters.sinks import (
    detected_issue,
    detected_issue_withdrawal,
    oru_r40,
    oru_r40_withdrawal,
)
from pumpguard.engine.findings import (
    Finding,
    RulePackRef,
    Severity,
    Withdrawal,
    make_finding_id,
    make_withdrawal_id,
    rfc3339,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PACK = RulePackRef(name="blincyto", version="0.1.0", sha256="0" * 64, edition="seed")


def make_finding() -> Finding:
    evidence = ["e-1", "e-2"]
    return Finding(
        finding_id=make_finding_id("BLN-BAG-01", "P-7", evidence, rfc3339(T0)),
        code="BAG_OVERDUE",
        rule_id="BLN-BAG-01",
        severity=Severity.HIGH,
        patient_id="P-7",
        ts=T0,
        message="Bag B2 is still infusing 2 h after its labelled duration.",
        action="Change the bag now.",
        evidence=evidence,
        citation="R-BAG-DUR",
        rule_pack=PACK,
        requirement="R-BAG-DUR",
    )


def make_withdrawal(finding: Finding) -> Withdrawal:
    ts = T0 + timedelta(hours=1, minutes=5)
    return Withdrawal(
        withdraws=finding.finding_id,
        ts=ts,
        reason="A bag change documented late (09:58) shows bag B2 was replaced on time.",
        evidence=["late-1"],
        rule_pack=PACK,
        withdrawal_id=make_withdrawal_id(finding.finding_id, rfc3339(ts), ["late-1"]),
        patient_id=finding.patient_id,
        code=finding.code,
        rule_id=finding.rule_id,
        severity=finding.severity,
    )


@pytest.fixture(name="pair")
def _pair() -> tuple[Finding, Withdrawal]:
    finding = make_finding()
    return finding, make_withdrawal(finding)


def facets(message: hl7.Message) -> dict[str, str]:
    """OBX-3 identifier text -> OBX-5 value of an ORU^R40."""
    return {str(obx[3][0][1]): str(obx[5]) for obx in message.segments("OBX")}


class TestOruR40Withdrawal:
    def test_withdrawal_ends_the_findings_alert_phase_end_state_inactive(
        self, pair: tuple[Finding, Withdrawal]
    ) -> None:
        _, w = pair
        values = facets(hl7.parse(oru_r40_withdrawal(w)))
        assert values["MDC_ATTR_EVENT_PHASE"] == "end"
        assert values["MDC_ATTR_ALARM_STATE"] == "inactive"

    def test_withdrawal_carries_the_same_alert_identity_as_the_finding(
        self, pair: tuple[Finding, Withdrawal]
    ) -> None:
        finding, w = pair
        start, end = hl7.parse(oru_r40(finding)), hl7.parse(oru_r40_withdrawal(w))
        for field in (2, 3, 4):  # placer, filler (the alert id), MDC_EVT_ALARM
            assert str(end.segment("OBR")[field]) == str(start.segment("OBR")[field])
        assert str(end.segment("OBR")[3][0][0]) == finding.finding_id
        assert (
            str(end.segment("OBR")[29])
            == f"{finding.finding_id}&PUMPGUARD^{finding.finding_id}&PUMPGUARD"
        )
        first = lambda m: str(m.segments("OBX")[0][3])  # noqa: E731
        assert first(end) == first(start)  # the same alert code
        assert str(end.segment("PID")[3]) == str(start.segment("PID")[3])
        priority = "MDC_ATTR_ALARM_PRIORITY"
        assert facets(end)[priority] == facets(start)[priority]

    def test_withdrawal_has_its_own_control_id_and_its_decision_time(
        self, pair: tuple[Finding, Withdrawal]
    ) -> None:
        finding, w = pair
        end = hl7.parse(oru_r40_withdrawal(w))
        assert str(end.segment("MSH")[10]) == w.withdrawal_id != finding.finding_id
        assert str(end.segment("MSH")[9]) == "ORU^R40^ORU_R40"
        assert str(end.segment("OBR")[7]) == "20260302090500+0000"

    def test_withdrawal_reason_is_the_alert_text_and_the_note(
        self, pair: tuple[Finding, Withdrawal]
    ) -> None:
        _, w = pair
        end = hl7.parse(oru_r40_withdrawal(w))
        assert facets(end)["MDC_ATTR_ALERT_TEXT"] == f"Withdrawn: {w.reason}"
        assert str(end.segment("NTE")[3]) == w.reason

    def test_finding_alert_is_unchanged_byte_for_byte(self) -> None:
        finding = make_finding()
        fid, at = finding.finding_id, "20260302080000+0000"
        profile = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"
        msh = f"MSH|^~\\&|PUMPGUARD|PUMPGUARD|ACM|ACM|{at}||ORU^R40^ORU_R40|{fid}|P|2.6|||AL|NE||"
        rows = [
            ("0^PUMPGUARD_BAG_OVERDUE^PUMPGUARD", "BAG_OVERDUE"),
            ("68480^MDC_ATTR_ALERT_SOURCE^MDC", "pumpguard BLN-BAG-01"),
            ("68481^MDC_ATTR_EVENT_PHASE^MDC", "tpoint"),
            ("68482^MDC_ATTR_ALARM_STATE^MDC", "active"),
            ("68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC", "enabled"),
            ("68484^MDC_ATTR_ALARM_PRIORITY^MDC", "PH"),
            ("68485^MDC_ATTR_ALERT_TYPE^MDC", "SA"),
            ("68546^MDC_ATTR_ALERT_TEXT^MDC", finding.message),
        ]
        expected = [
            msh + "UNICODE UTF-8|en^English^ISO639||" + profile,
            "PID|||P-7^^^PUMPGUARD^PI",
            f"OBR|1|{fid}^PUMPGUARD|{fid}^PUMPGUARD|196616^MDC_EVT_ALARM^MDC|||{at}",
            *(
                f"OBX|{i}|ST|{code}|1.0.0.0.{i}|{value}||||||F|||{at}"
                for i, (code, value) in enumerate(rows, start=1)
            ),
            "NTE|1||Change the bag now.",
        ]
        assert oru_r40(finding) == "\r".join(expected)


class TestDetectedIssueWithdrawal:
    def test_withdrawal_is_entered_in_error_with_the_findings_id_and_identifier(
        self, pair: tuple[Finding, Withdrawal]
    ) -> None:
        finding, w = pair
        issue, gone = detected_issue(finding), detected_issue_withdrawal(w)
        assert gone["status"] == "entered-in-error"
        assert gone["id"] == issue["id"] == finding.finding_id
        assert gone["identifier"][0] == issue["identifier"][0]
        assert {"system": "urn:pumpguard:withdrawal", "value": w.withdrawal_id} in gone[
            "identifier"
        ]

    def test_withdrawal_is_a_valid_r4_detected_issue_naming_the_late_evidence(
        self, pair: tuple[Finding, Withdrawal]
    ) -> None:
        _, w = pair
        gone = detected_issue_withdrawal(w)
        DetectedIssue.model_validate(gone)
        assert gone["evidence"] == [{"detail": [{"display": "late-1"}]}]
        assert w.reason in gone["detail"]
        assert gone["patient"] == {"reference": "Patient/P-7"}
        assert gone["code"] == detected_issue(make_finding())["code"]

    def test_withdrawal_json_is_its_spec_record(self, pair: tuple[Finding, Withdrawal]) -> None:
        finding, w = pair
        data = json.loads(w.to_json())
        assert data["withdraws"] == finding.finding_id
        assert data["ts"] == "2026-03-02T09:05:00Z"
        assert list(data)[:5] == ["withdraws", "ts", "reason", "evidence", "rule_pack"]
