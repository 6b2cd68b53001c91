"""The live core: the engine as pump middleware drives it, deterministic in its journal.

Input is the journal's engine log in position order: events (with the time the
service received them) and ticks (the times the scheduler fired deadlines up
to). Output is findings and withdrawals. Nothing else goes in: no wall clock,
no arrival timing, so recovery that replays the journal after a snapshot
raises exactly the findings (ids and content) an uninterrupted run raised.

Late data converges. Patients are independent, so order is judged per
patient: an event is in order when it comes after every event of its patient
already applied (in the replay's order: time, documentation before pump acts
within a second, journal position) and after every deadline of its patient
already fired. Another patient's clock does not make it late. An event out
of order is not applied as it comes: the patient's history is re-evaluated in event time from the
journal, starting from the newest checkpoint of that patient that precedes
the late event, on a second engine (one more durable-rules host for the life
of the process: hosts are never freed). What the corrected history raises and
the live one did not is raised now, marked ``late``; what the live one raised
and the corrected history does not is withdrawn. So the live findings, less
their withdrawals, are those of a replay of the same journal
(``pumpguard journal export`` then ``pumpguard replay --until`` the last tick).

A finding is also ``late`` when the event behind it reached the service more
than ``late_after_s`` after its own time (documentation entered after the fact).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pumpguard.engine.clock import ManualClock
from pumpguard.engine.core import Engine
from pumpguard.engine.events import Event
from pumpguard.engine.findings import (
    Finding,
    Withdrawal,
    format_ts,
    make_withdrawal_id,
    rfc3339,
    utc,
)
from pumpguard.engine.ordering import same_second_rank
from pumpguard.engine.pack import CompiledPack
from pumpguard.engine.snapshot import EngineSnapshot, PatientSession, dumps, loads

__all__ = [
    "CHECKPOINT_EVERY_S",
    "IDLE_AFTER_S",
    "MAX_CHECKPOINTS",
    "History",
    "LiveCore",
    "LiveInput",
    "Outputs",
    "SortKey",
]

CHECKPOINT_EVERY_S = 6 * 3600.0
"""Keep a patient's session every 6 h of its event time: a late event replays hours, not weeks."""

MAX_CHECKPOINTS = 8
"""Per patient (2 days at 6 h); a later event older than all of them re-evaluates from the start."""

IDLE_AFTER_S = 2 * 86400.0
"""A patient with no event for 2 days of engine time keeps no checkpoints (a course that ended
costs no memory; a late event for it re-evaluates its whole history from the journal)."""

SortKey = tuple[float, int, int, int]
"""(ts, same-second rank, journal position, index in its message): replay's order in a patient."""

_NO_KEY: SortKey = (float("-inf"), -1, -1, -1)


class LiveInput(Protocol):
    """One entry of the journal's engine log (the journal's ``JournalInput`` is one)."""

    @property
    def position(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def events(self) -> tuple[Event, ...]: ...


class History(Protocol):
    """Where a re-evaluation reads one patient's events from (the journal)."""

    def patient_events(
        self, patient_id: str, *, since_ts: float | None = None
    ) -> list[tuple[int, Event]]: ...


@dataclass(frozen=True, slots=True)
class Outputs:
    """What one journal input raised and withdrew, in order."""

    findings: tuple[Finding, ...] = ()
    withdrawals: tuple[Withdrawal, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.findings or self.withdrawals)


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """A patient's session after the event with ``key`` (and its deadlines fired to then)."""

    key: SortKey
    fired_until: float
    raised: int
    session: bytes

    def admits(self, key: SortKey) -> bool:
        """Whether an event with ``key`` can be applied on top of this checkpoint."""
        return self.key < key and key[0] > self.fired_until


@dataclass(slots=True)
class _Patient:
    findings: list[Finding] = field(default_factory=list)
    last_key: SortKey = _NO_KEY
    checkpoints: list[_Checkpoint] = field(default_factory=list)


@dataclass(slots=True)
class _Collector:
    now: float
    late_after_s: float
    findings: list[Finding] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)

    def outputs(self) -> Outputs:
        return Outputs(tuple(self.findings), tuple(self.withdrawals))

    def marked(self, f: Finding, *, late: bool = False) -> Finding:
        """``late`` is the service's verdict: re-raised, or behind its event by over the limit."""
        late = late or self.now - f.ts.timestamp() > self.late_after_s
        return f if f.late == late else f.model_copy(update={"late": late})


class LiveCore:
    """Journal inputs in, findings and withdrawals out; snapshot and restore as bytes."""

    def __init__(
        self,
        pack: CompiledPack,
        history: History,
        *,
        late_after_s: float = 300.0,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        max_checkpoints: int = MAX_CHECKPOINTS,
    ) -> None:
        self.pack = pack
        self.history = history
        self.late_after_s = late_after_s
        self.checkpoint_every_s = checkpoint_every_s
        self.max_checkpoints = max_checkpoints
        self.clock = ManualClock(mode="live")
        self.engine = Engine(pack, self.clock)
        # Made now, not at the first late event: making it then held that evaluation
        # (and every finding behind it) about 50 ms.
        self._shadow = Engine(pack, ManualClock(mode="live"))
        self._patients: dict[str, _Patient] = {}
        self.tick_at = float("-inf")
        self.position = 0
        self.reevaluations = 0

    # -- the journal's log ----------------------------------------------------
    def process(self, inp: LiveInput) -> Outputs:
        """Evaluate one journal input (events or a tick), in position order."""
        if inp.position <= self.position:
            return Outputs()  # already evaluated (a snapshot covers it)
        self.position = inp.position
        self.clock.set(max(self.clock.now(), inp.at))
        out = _Collector(inp.at, self.late_after_s)
        if inp.kind == "tick":
            self.tick_at = max(self.tick_at, inp.at)
            self._collect(self.engine.advance(inp.at), out)
            return out.outputs()
        for index, event in enumerate(inp.events):
            key = _key(event, inp.position, index)
            pid = event.patient_id
            patient = self._patient(pid)
            state = self.engine.patients.get(pid)
            fired = state.fired_until if state is not None else float("-inf")
            if key > patient.last_key and key[0] > fired:
                self._checkpoint(pid, patient, key[0])
                patient.last_key = key
                # Deadlines the patient's own time has passed fire before its event, even
                # when other patients have taken the engine's time further (replay's order).
                self._collect(self.engine.fire_overdue(pid, key[0]), out)
                self._collect(self.engine.submit(event), out)
            else:
                self._reevaluate(event, key, out)
        return out.outputs()

    def next_due(self) -> float | None:
        """When the scheduler should next tick."""
        return self.engine.next_due()

    def findings_of(self, patient_id: str) -> tuple[Finding, ...]:
        """A patient's live findings less those withdrawn, in the order raised."""
        p = self._patients.get(patient_id)
        return tuple(p.findings) if p is not None else ()

    def active_findings(self) -> list[Finding]:
        """Every live finding not withdrawn (what a replay of the journal gives)."""
        return [f for p in self._patients.values() for f in p.findings]

    # -- snapshots ------------------------------------------------------------
    def snapshot(self) -> bytes:
        """Everything needed to go on from :attr:`position`."""
        self.prune()
        return dumps(
            _CoreState(
                self.engine.snapshot(copy=False),  # dumps copies
                self._patients,
                self.tick_at,
                self.position,
                self.clock.now(),
                self.reevaluations,
            )
        )

    def restore(self, blob: bytes) -> None:
        """Go on from a :meth:`snapshot` of a core of the same pack and code."""
        state = loads(blob)
        if not isinstance(state, _CoreState):
            msg = "not a live-core snapshot"
            raise TypeError(msg)
        self.engine.restore(state.engine, copy=False)  # just unpickled: ours alone
        self._patients = state.patients
        self.tick_at = state.tick_at
        self.position = state.position
        self.clock.set(state.clock)
        self.reevaluations = state.reevaluations

    def prune(self) -> int:
        """Drop the checkpoints of idle patients; how many patients were pruned."""
        horizon = self.engine.watermark - IDLE_AFTER_S
        pruned = 0
        for p in self._patients.values():
            if p.checkpoints and p.last_key[0] < horizon:
                p.checkpoints.clear()
                pruned += 1
        return pruned

    def patient_summary(self, patient_id: str) -> dict[str, Any] | None:
        """What a nurse would want to see of one patient now (``GET /patients/{id}``)."""
        state = self.engine.patients.get(patient_id)
        if state is None:
            return None
        now = max(self.clock.now(), self.engine.watermark)
        view: Mapping[str, Any] = state.view(None, now, None)
        session = self.engine.export_patient(patient_id)
        deadlines = [
            {"name": d.name, "due": format_ts(d.due), "opened_by": d.opened_by}
            for d in (session.deadlines if session is not None else ())
        ]
        return {
            "patient_id": patient_id,
            "state": dict(view),
            "open_deadlines": deadlines,
            "findings": len(self.findings_of(patient_id)),
            "as_of": format_ts(now),
        }

    # -- inside ---------------------------------------------------------------
    def _patient(self, patient_id: str) -> _Patient:
        p = self._patients.get(patient_id)
        if p is None:
            p = self._patients[patient_id] = _Patient()
        return p

    def _checkpoint(self, pid: str, patient: _Patient, ts: float) -> None:
        """Keep the session before this event once 6 h of the patient's time have passed."""
        if patient.last_key is _NO_KEY:
            return  # nothing applied yet: the start is the implicit checkpoint
        last = patient.checkpoints[-1].key[0] if patient.checkpoints else float("-inf")
        if ts - last < self.checkpoint_every_s:
            return
        session = self.engine.export_patient(pid, copy=False)  # _keep pickles it
        if session is not None:
            self._keep(patient, patient.last_key, session, len(patient.findings))

    def _keep(self, patient: _Patient, key: SortKey, session: PatientSession, raised: int) -> None:
        cp = _Checkpoint(key, session.state.fired_until, raised, dumps(session))
        patient.checkpoints.append(cp)
        del patient.checkpoints[: -self.max_checkpoints]

    def _collect(self, findings: Iterable[Finding], out: _Collector) -> None:
        for f in findings:
            f = out.marked(f)
            self._patient(f.patient_id).findings.append(f)
            out.findings.append(f)

    def _reevaluate(self, late: Event, key: SortKey, out: _Collector) -> None:
        """Re-run one patient's history from its newest usable checkpoint; diff, withdraw, raise."""
        self.reevaluations += 1
        pid = late.patient_id
        patient = self._patient(pid)
        base = next((cp for cp in reversed(patient.checkpoints) if cp.admits(key)), None)
        shadow = self._shadow
        shadow.drop_patient(pid)
        shadow.watermark = float("-inf")  # only this patient: its own events fire its deadlines
        if base is None:
            start, kept, since = _NO_KEY, 0, None
            patient.checkpoints.clear()
        else:
            start, kept, since = base.key, base.raised, base.key[0]
            session = loads(base.session)
            assert isinstance(session, PatientSession)
            shadow.import_patient(session)
            del patient.checkpoints[patient.checkpoints.index(base) + 1 :]
        found: list[Finding] = []
        previous = start
        for k, event in sorted(self._keyed(pid, since_ts=since)):
            if k <= start:
                continue
            newest = patient.checkpoints[-1].key[0] if patient.checkpoints else start[0]
            if previous is not _NO_KEY and k[0] - newest >= self.checkpoint_every_s:
                snap = shadow.export_patient(pid, copy=False)  # _keep pickles it
                if snap is not None:
                    self._keep(patient, previous, snap, kept + len(found))
            found.extend(shadow.submit(event))
            previous = k
        found.extend(shadow.advance(self.tick_at))
        found.extend(shadow.advance(self.engine.watermark, inclusive=False))
        self._settle(patient, kept, [f for f in found if f.patient_id == pid], late, out)
        patient.last_key = max(patient.last_key, previous)
        session = shadow.export_patient(pid, copy=False)  # import_patient copies it
        if session is not None:
            self.engine.import_patient(session)
        shadow.drop_patient(pid)

    def _keyed(self, pid: str, *, since_ts: float | None) -> list[tuple[SortKey, Event]]:
        """The patient's journaled events with their keys (index within each message)."""
        keyed: list[tuple[SortKey, Event]] = []
        index: dict[int, int] = {}
        for position, event in self.history.patient_events(pid, since_ts=since_ts):
            if position > self.position:
                continue  # journaled but not yet reached: the log's order, not the disk's
            i = index.get(position, 0)
            index[position] = i + 1
            keyed.append((_key(event, position, i), event))
        return keyed

    def _settle(
        self, patient: _Patient, kept: int, found: list[Finding], late: Event, out: _Collector
    ) -> None:
        """Diff the corrected history's findings with the live ones after the checkpoint."""
        before = patient.findings[kept:]
        was = {f.finding_id: f for f in before}
        now_ids = {f.finding_id for f in found}
        decided = format_ts(out.now)
        for f in before:
            if f.finding_id not in now_ids:
                out.withdrawals.append(_withdrawal(f, late, decided, out.now))
        corrected: list[Finding] = []
        for f in found:
            old = was.get(f.finding_id)
            if old is None:
                old = out.marked(f, late=True)
                out.findings.append(old)
            corrected.append(old)
        patient.findings[kept:] = corrected


@dataclass(frozen=True, slots=True)
class _CoreState:
    engine: EngineSnapshot
    patients: dict[str, _Patient]
    tick_at: float
    position: int
    clock: float
    reevaluations: int


def _key(event: Event, position: int, index: int) -> SortKey:
    return (event.ts.timestamp(), same_second_rank(event.type), position, index)


def _withdrawal(f: Finding, late: Event, decided: str, now: float) -> Withdrawal:
    evidence = [late.event_id]
    return Withdrawal(
        withdraws=f.finding_id,
        ts=utc(now),
        reason=(
            f"{late.type} {late.event_id} of {rfc3339(late.ts)} arrived late; "
            f"with it, {f.code} ({f.rule_id}) of {rfc3339(f.ts)} is no longer raised"
        ),
        evidence=evidence,
        rule_pack=f.rule_pack,
        withdrawal_id=make_withdrawal_id(f.finding_id, decided, evidence),
        patient_id=f.patient_id,
        code=f.code,
        rule_id=f.rule_id,
        severity=f.severity,
    )
