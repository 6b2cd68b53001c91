"""Builders shared by the journal tests (not a test module)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pumpguard.engine.events import Event, parse_event
from pumpguard.engine.findings import Finding, RulePackRef, Severity, Withdrawal
from pumpguard.service.journal import Inbound, JournalInput

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
R = TypeVar("R")
PACK = RulePackRef(name="blincyto", version="1", sha256="a" * 64, edition="seed")


def event(n: int, patient: str = "p1", at_min: float = 0) -> Event:
    return parse_event(
        {
            "event_id": f"{patient}-{n:04d}",
            "type": "pump.infusion_started",
            "ts": (T0 + timedelta(minutes=at_min)).isoformat(),
            "patient_id": patient,
            "pump_id": f"P-{patient}",
            "drug": "blinatumomab",
            "rate_ml_h": 10,
        }
    )


def inbound(
    n: int,
    *,
    key: str | None = "auto",
    raw: bytes | None = None,
    patient: str = "p1",
    at: float = 1000.0,
    events: int = 1,
) -> Inbound:
    """Message ``n``: HL7-looking bytes, key ``SND|FAC|<n>``, ``events`` events."""
    evs = tuple(event(n * 10 + i, patient, at_min=n) for i in range(events))
    return Inbound(
        channel="mllp",
        peer="127.0.0.1:5000",
        raw=raw if raw is not None else f"MSH|^~\\&|SND|FAC|||||ORU^R42|{n}|P|2.6".encode(),
        received_at=at + n,
        dedupe_key=f"SND|FAC|{n}" if key == "auto" else key,
        events=evs,
        outcome="accepted" if evs else "rejected",
        reason=None if evs else "pump P-1 is not bound to a patient",
        ack=f"MSA|AA|{n}".encode(),
    )


def finding(n: int, patient: str = "p1", severity: str = "high") -> Finding:
    return Finding(
        finding_id=f"F-{n:020d}",
        code="LINE_FLUSH",
        rule_id="BLN-NOFLUSH-01",
        severity=Severity(severity),
        patient_id=patient,
        ts=T0 + timedelta(hours=n),
        message="Line flushed with drug in it",
        action="Do not flush the line",
        evidence=[f"{patient}-0001"],
        citation="Label 2.4",
        rule_pack=PACK,
        requirement="R1",
    )


def withdrawal(of: Finding, n: int = 1) -> Withdrawal:
    return Withdrawal(
        withdraws=of.finding_id,
        ts=of.ts + timedelta(hours=1),
        reason="a late event shows the line was not flushed",
        evidence=[f"{of.patient_id}-0009"],
        rule_pack=PACK,
        withdrawal_id=f"W-{n:020d}",
        patient_id=of.patient_id,
        code=of.code,
        rule_id=of.rule_id,
        severity=of.severity,
    )


class Gate:
    """An ``on_commit`` that can hold the writer thread, to queue writes behind a batch.

    While held, the writer sits in ``on_commit`` of a committed batch, so whatever is
    submitted meanwhile lands in the next batch together.
    """

    def __init__(self) -> None:
        self.inputs: list[JournalInput] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.hold_next = False

    def __call__(self, inputs: list[JournalInput]) -> None:
        self.inputs.extend(inputs)
        if self.hold_next:
            self.hold_next = False
            self.release.clear()
            self.entered.set()
            assert self.release.wait(10), "test never released the writer"

    def hold(self) -> None:
        self.entered.clear()
        self.hold_next = True


def run_async(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine on a loop of its own, never installed as the current loop.

    Not asyncio.run, nor pytest-asyncio: with pytest-asyncio 1.5 on 3.11 either one
    leaves a loop pytest-asyncio made unclosed (pytest-asyncio issue 724), which
    ``filterwarnings = error`` turns into a failure of whichever test comes next.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
