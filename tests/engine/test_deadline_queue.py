"""The deadline queue's per-patient bookkeeping (the live core reads one patient at a time)."""

from __future__ import annotations

from pumpguard.engine.deadlines import DeadlineQueue


def _open(q: DeadlineQueue, patient: str, name: str, due: float) -> None:
    q.open(patient, name, due, opened_by="R", carry={}, evidence=())


def test_a_patients_deadlines_come_in_the_order_opened_and_only_theirs() -> None:
    q = DeadlineQueue()
    _open(q, "A", "late", 30.0)
    _open(q, "B", "early", 10.0)
    _open(q, "A", "early", 20.0)
    _open(q, "A", "late", 40.0)  # reopening replaces, and counts as opened now
    assert [(d.name, d.due) for d in q.of_patient("A")] == [("early", 20.0), ("late", 40.0)]
    assert [d.name for d in q.of_patient("B")] == ["early"]
    assert q.of_patient("nobody") == []
    assert len(q) == 3


def test_dropping_a_patient_cancels_its_deadlines_and_no_others() -> None:
    q = DeadlineQueue()
    _open(q, "A", "x", 10.0)
    _open(q, "B", "x", 20.0)
    q.drop_patient("A")
    assert q.of_patient("A") == []
    assert len(q) == 1
    assert [(d.patient_id, d.due) for d in q.pop_due(100.0, inclusive=True)] == [("B", 20.0)]
    assert len(q) == 0


def test_a_fired_or_closed_deadline_leaves_the_patients_list() -> None:
    q = DeadlineQueue()
    _open(q, "A", "x", 10.0)
    _open(q, "A", "y", 50.0)
    assert [d.name for d in q.pop_due(20.0, inclusive=True)] == ["x"]
    assert [d.name for d in q.of_patient("A")] == ["y"]
    assert q.close("A", "y")
    assert not q.close("A", "y")
    assert q.of_patient("A") == []
    assert len(q) == 0
    assert q.next_due() is None
