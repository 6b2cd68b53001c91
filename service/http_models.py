"""The records the HTTP API hands out and takes in, and the journal as the API sees it.

Apart from the routes (``service/http.py``) so the live core can build a
:class:`PatientView` or a :class:`HealthReport` without importing aiohttp handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from aiohttp import web
from pumpguard.engine.errors import PumpguardError
from pumpguard.engine.findings import Finding, Severity, rfc3339
from pumpguard.service.journal_records import Inbound
from pumpguard.service.metrics import Metrics
from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer

__all__ = [
    "DEPS",
    "ApiRefusal",
    "AppendedLike",
    "BagView",
    "DeadlineView",
    "HealthReport",
    "HttpDeps",
    "InboundRecord",
    "InterruptionView",
    "JournalPort",
    "Now",
    "PatientView",
    "SinkBacklogLike",
    "SinkHealth",
    "StoredFindingLike",
    "health_problems",
]


Instant = Annotated[AwareDatetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]
"""An aware time, written as RFC 3339 UTC with a ``Z`` like every finding's ``ts``."""


class ApiRefusal(PumpguardError):
    """A request the API refuses, answered ``status`` with ``{"error": message}``.

    Our own error rather than aiohttp's HTTP exceptions: their reason goes into the status
    line, where a quoted client value (a ``since`` with a line break) is not allowed.
    """

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BagView(_View):
    bag_id: str | None = None
    hung_at: Instant | None = None
    due: Instant | None = None


class InterruptionView(_View):
    since: Instant
    hours: float


class DeadlineView(_View):
    name: str
    due: Instant
    rule: str


class PatientView(_View):
    """The derived state of one patient, as the live core reads it from engine state."""

    patient_id: str
    cycle: int | None = None
    day: int | None = None
    running: bool = False
    dose_mcg_day: float | None = None
    bag: BagView | None = None
    open_interruption: InterruptionView | None = None
    hospitalized: bool = False
    open_deadlines: tuple[DeadlineView, ...] = ()
    last_event_ts: Instant | None = None


class SinkHealth(_View):
    sink: str
    pending: int
    oldest_age_s: float | None = None


class HealthReport(_View):
    """What ``/healthz`` shows; judged by :func:`health_problems`."""

    journal_ok: bool
    journal_error: str | None = None
    recovery_done: bool = False
    engine_lag_s: float | None = None
    sinks: tuple[SinkHealth, ...] = ()


def health_problems(report: HealthReport, backlog_limit: int) -> list[str]:
    """Why the service is unhealthy (empty when it is not). Recovery is readiness, not health."""
    problems = [] if report.journal_ok else [f"journal failing: {report.journal_error}"]
    problems += [
        f"sink {s.sink}: {s.pending} pending, over the limit of {backlog_limit}"
        for s in report.sinks
        if s.pending > backlog_limit
    ]
    return problems


# The journal, as far as this module uses it (service/journal.py is the real one).
class AppendedLike(Protocol):
    @property
    def duplicate(self) -> bool:
        """The dedupe key was seen before: nothing new stored."""

    @property
    def conflict(self) -> bool:
        """A duplicate whose content differs from the original's (the journal keeps it aside)."""


class StoredFindingLike(Protocol):
    @property
    def finding(self) -> Finding: ...
    @property
    def withdrawn(self) -> bool: ...
    @property
    def withdrawn_by(self) -> str | None: ...


class SinkBacklogLike(Protocol):
    @property
    def pending(self) -> int: ...
    @property
    def oldest_age_s(self) -> float | None: ...


class JournalPort(Protocol):
    """The journal's methods the API calls (``service/journal.py`` is the real one)."""

    # ``inbound`` is the journal's own Inbound, built by ``HttpDeps.inbound``.
    def append(self, inbound: Any) -> Awaitable[AppendedLike]: ...

    def findings(
        self,
        *,
        patient_id: str | None = None,
        min_severity: Severity | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> Sequence[StoredFindingLike]: ...

    def backlog(self, now: float | None = None) -> Mapping[str, SinkBacklogLike]: ...


class Now(Protocol):
    def now(self) -> float: ...


InboundRecord = Inbound
"""The journal's own record of a received message: what ``POST /events`` hands it."""


@dataclass(frozen=True)
class HttpDeps:
    """Everything the API needs, injected (no globals, no wall clock).

    ``patient_view``, ``ready`` and ``health`` are called on the event loop: they must be
    quick reads of state the live core keeps (the journal is read in threads instead).
    ``inbound`` builds what ``journal.append`` takes: pass ``journal_records.Inbound``.
    """

    journal: JournalPort
    patient_view: Callable[[str], PatientView | None]
    ready: Callable[[], bool]
    health: Callable[[], HealthReport]
    metrics: Metrics
    clock: Now
    token: str | None = None
    """When set, every route but ``/healthz`` and ``/readyz`` needs ``Bearer <token>``."""
    inbound: Callable[..., object] = InboundRecord
    max_body_bytes: int = 4 * 1024 * 1024
    max_items: int = 5000
    """Items in one POST; more is refused (413) before anything is journaled."""
    backlog_limit: int = 10_000
    """A sink with more pending than this makes ``/healthz`` answer 503."""
    log_patient_ids: bool = False
    """Put the request path (which may hold a patient id) in the info-level request log."""


DEPS = web.AppKey("deps", HttpDeps)
