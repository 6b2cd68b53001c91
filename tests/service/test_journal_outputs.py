"""The journal's outputs, outbox, snapshots and remaps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _journal_support import event, finding, inbound, withdrawal
from pumpguard.service.journal import Journal, JournalError


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    j.append_wait(inbound(1))  # position 1, received at 1001.0
    yield j
    j.close()


def test_record_outputs_journals_each_finding_once(journal: Journal) -> None:
    f1, f2 = finding(1), finding(2)
    assert journal.record_outputs([f1, f2], ["hl7", "fhir"], position=1) == [
        f1.finding_id,
        f2.finding_id,
    ]
    # a replay after a restart makes the same findings again: nothing new, nothing re-sent
    assert journal.record_outputs([f2, f1], ["hl7", "fhir"], position=1) == []
    assert [s.finding for s in journal.findings()] == [f1, f2]
    assert {k: b.pending for k, b in journal.backlog().items()} == {"fhir": 2, "hl7": 2}


def test_outputs_for_an_unknown_position_are_refused(journal: Journal) -> None:
    with pytest.raises(JournalError, match="no engine input at position 9"):
        journal.record_outputs([finding(1)], ["hl7"], position=9)
    assert journal.findings() == []


def test_withdrawn_finding_is_flagged_with_its_withdrawal(journal: Journal) -> None:
    kept, gone = finding(1), finding(2)
    w = withdrawal(gone)
    journal.record_outputs([kept, gone], ["hl7"], position=1)
    assert journal.record_outputs([w, w], ["hl7"], position=1) == [w.withdrawal_id]
    flags = {s.finding.finding_id: (s.withdrawn, s.withdrawn_by) for s in journal.findings()}
    assert flags == {kept.finding_id: (False, None), gone.finding_id: (True, w.withdrawal_id)}
    assert [s.withdrawal for s in journal.withdrawals()] == [w]


def test_findings_filter_by_patient_severity_and_time(journal: Journal) -> None:
    outputs = [finding(1, "p1", "low"), finding(2, "p2", "high"), finding(3, "p1", "critical")]
    journal.record_outputs(outputs, [], position=1)

    def ids(**kw: object) -> list[str]:
        return [s.finding.finding_id for s in journal.findings(**kw)]  # type: ignore[arg-type]

    f1, f2, f3 = (f.finding_id for f in outputs)
    assert ids(patient_id="p1") == [f1, f3]
    assert ids(severity="high") == [f2]
    assert ids(min_severity="high") == [f2, f3]
    assert ids(since=outputs[1].ts.timestamp()) == [f2, f3]
    assert ids(limit=1) == [f1]


def test_outbox_item_is_due_from_enqueue_until_delivered(journal: Journal) -> None:
    journal.record_outputs([finding(1)], ["hl7"], position=1)
    assert journal.outbox_due("hl7", now=1000.0) == []  # enqueued at the input's time, 1001
    (item,) = journal.outbox_due("hl7", now=1001.0)
    assert (item.kind, item.body) == ("finding", finding(1).to_json())
    journal.mark_delivered("hl7", [item.item_id], at=1002.0)
    assert journal.outbox_due("hl7", now=9999.0) == []
    assert journal.backlog()["hl7"].pending == 0


def test_retried_item_waits_until_its_next_attempt(journal: Journal) -> None:
    journal.record_outputs([finding(1)], ["hl7"], position=1)
    (item,) = journal.outbox_due("hl7", now=1001.0)
    journal.mark_retry("hl7", item.item_id, next_at=1060.0, error="connection refused")
    assert journal.outbox_due("hl7", now=1059.0) == []
    (again,) = journal.outbox_due("hl7", now=1060.0)
    assert (again.attempts, again.last_error) == (1, "connection refused")
    backlog = journal.backlog(now=1101.0)["hl7"]
    assert (backlog.pending, backlog.oldest_age_s) == (1, 100.0)


def test_delivery_to_one_sink_leaves_the_other_pending(journal: Journal) -> None:
    journal.record_outputs([finding(1)], ["hl7", "fhir"], position=1)
    (item,) = journal.outbox_due("hl7", now=2000.0)
    journal.mark_delivered("hl7", [item.item_id], at=2000.0)
    assert len(journal.outbox_due("fhir", now=2000.0)) == 1


def test_snapshot_is_returned_only_for_its_pack_and_code_version(journal: Journal) -> None:
    journal.save_snapshot(1, "pack-a", "0.1.0", b"state at 1")
    journal.save_snapshot(1, "pack-b", "0.1.0", b"other pack")
    assert journal.latest_snapshot("pack-a", "0.1.0") == (1, b"state at 1")
    assert journal.latest_snapshot("pack-a", "0.2.0") is None
    assert journal.latest_snapshot("pack-c", "0.1.0") is None


def test_newest_snapshot_wins_and_only_the_last_few_are_kept(journal: Journal) -> None:
    for position in range(1, 6):
        journal.save_snapshot(position, "pack-a", "0.1.0", f"state {position}".encode())
    assert journal.latest_snapshot("pack-a", "0.1.0") == (5, b"state 5")
    assert journal.stats().snapshots == 3


def test_remap_appends_a_new_input_at_the_end_and_keeps_history(journal: Journal) -> None:
    rejected = journal.append_wait(inbound(2, events=0))
    journal.append_tick(5000.0)
    remapped = journal.remap(rejected.message_seq, [event(99)], "accepted", None, at=6000.0)
    assert remapped.position == 3  # after the tick: the log only grows
    last = list(journal.inputs_after(2))
    assert [(i.position, i.message_seq, i.at) for i in last] == [(3, 2, 6000.0)]
    stored = journal.message(rejected.message_seq)
    assert stored is not None
    assert (stored.outcome, stored.received_outcome, stored.position) == (
        "accepted",
        "rejected",
        3,
    )
    history = journal.message_history(rejected.message_seq)
    assert [(h.via, h.outcome, h.position) for h in history] == [
        ("received", "rejected", None),
        ("remap", "accepted", 3),
    ]


def test_remap_without_a_time_uses_the_last_input_time(journal: Journal) -> None:
    rejected = journal.append_wait(inbound(2, events=0))
    journal.append_tick(5000.0)
    journal.remap(rejected.message_seq, [event(99)], "accepted", None)
    assert [i.at for i in journal.inputs_after(2)] == [5000.0]


def test_only_a_rejected_message_can_be_remapped(journal: Journal) -> None:
    with pytest.raises(JournalError, match="is accepted, not rejected"):
        journal.remap(1, [event(99)], "accepted", None)
    with pytest.raises(JournalError, match="no message 42"):
        journal.remap(42, [event(99)], "accepted", None)


def test_a_held_finding_is_due_only_after_its_grace_period(journal: Journal) -> None:
    f = finding(1)
    journal.record_outputs([f], ["hl7"], position=1, hold={"LINE_FLUSH": 900.0})
    assert journal.outbox_due("hl7", 1001.0 + 899) == []
    assert [i.output_id for i in journal.outbox_due("hl7", 1001.0 + 900)] == [f.finding_id]


def test_a_withdrawal_while_held_reaches_no_sink_and_ends_the_finding(journal: Journal) -> None:
    f = finding(1)
    journal.record_outputs([f], ["hl7"], position=1, hold={"LINE_FLUSH": 900.0})
    journal.append_wait(inbound(2, at=1100.0))
    journal.record_outputs([withdrawal(f)], ["hl7"], position=2, hold={"LINE_FLUSH": 900.0})
    assert journal.outbox_due("hl7", 10_000.0) == []
    assert journal.backlog()["hl7"].pending == 0


def test_a_withdrawal_of_a_finding_not_held_is_delivered(journal: Journal) -> None:
    f = finding(1)
    journal.record_outputs([f], ["hl7"], position=1, hold={"OTHER_CODE": 900.0})
    journal.append_wait(inbound(2, at=1100.0))
    w = withdrawal(f)
    journal.record_outputs([w], ["hl7"], position=2, hold={"OTHER_CODE": 900.0})
    due = [i.output_id for i in journal.outbox_due("hl7", 2000.0)]
    assert due == [f.finding_id, w.withdrawal_id]
