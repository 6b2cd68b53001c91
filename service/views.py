"""What the API shows of the live engine: one patient's state, the service's health.

Read from the engine thread's state under its lock, as the nurse's questions
put them: which cycle and day, is it running and at what dose, which bag and
when it is due, is an interruption open and for how long, which deadlines
are running.
"""

from __future__ import annotations

from typing import Protocol

from pumpguard.engine.findings import utc

from .http_models import (
    BagView,
    DeadlineView,
    HealthReport,
    InterruptionView,
    PatientView,
    SinkHealth,
)
from .journal import Journal
from .worker import EngineWorker

__all__ = ["EngineHealth", "health_report", "patient_view"]


class EngineHealth(Protocol):
    """What the health report reads of the engine (its thread, or its process)."""

    @property
    def failed(self) -> object: ...

    @property
    def watermark(self) -> float: ...


HOUR = 3600.0


def patient_view(worker: EngineWorker, patient_id: str) -> PatientView | None:
    """One patient's derived state now (None if the engine has never seen the patient)."""
    core = worker.core
    with worker.lock:
        state = core.engine.patients.get(patient_id)
        if state is None:
            return None
        session = core.engine.export_patient(patient_id)
        now = max(core.clock.now(), core.engine.watermark)
        bag = None
        for ch in state.channels.values():
            if ch.has_drug and ch.bag_id is not None:
                b = state.bags.get(ch.bag_id)
                hung = b.first_start if b is not None else None
                due = hung + b.duration_h * HOUR if b is not None and hung is not None else None
                bag = BagView(
                    bag_id=ch.bag_id,
                    hung_at=utc(hung) if hung is not None else None,
                    due=utc(due) if due is not None else None,
                )
                if ch.delivering:
                    break
        interruption = None
        if not state.delivering and state.last_stop is not None and state.cycle is not None:
            interruption = InterruptionView(
                since=utc(state.last_stop), hours=round((now - state.last_stop) / HOUR, 2)
            )
        day = None
        if state.cycle_start_ts is not None:
            day = int((now - state.cycle_start_ts) // (24 * HOUR)) + 1
        deadlines = tuple(
            DeadlineView(name=d.name, due=utc(d.due), rule=d.opened_by)
            for d in (session.deadlines if session is not None else ())
        )
        return PatientView(
            patient_id=patient_id,
            cycle=state.cycle,
            day=day,
            running=state.delivering,
            dose_mcg_day=state.last_dose if state.delivering else None,
            bag=bag,
            open_interruption=interruption,
            hospitalized=state.setting in state.cfg.hospital_settings,
            open_deadlines=deadlines,
            last_event_ts=utc(core.clock.now()),
        )


def health_report(
    engine: EngineHealth, journal: Journal, now: float, *, recovered: bool
) -> HealthReport:
    """The service's health: the journal, the engine, each sink's backlog."""
    error = journal.failure
    if engine.failed is not None:
        error = error or f"engine stopped: {engine.failed!r}"
    sinks = tuple(
        SinkHealth(sink=name, pending=b.pending, oldest_age_s=b.oldest_age_s)
        for name, b in sorted(journal.backlog(now).items())
    )
    watermark = engine.watermark
    lag = max(0.0, now - watermark) if watermark != float("-inf") else None
    return HealthReport(
        journal_ok=error is None,
        journal_error=error,
        recovery_done=recovered,
        engine_lag_s=lag,
        sinks=sinks,
    )
