"""Engine state as a value: a patient's session, or the whole engine, copied out and back in.

The live service needs both: a whole-engine snapshot to restart in under a
second instead of replaying months of journal, and one patient's session to
re-evaluate that patient's history when documentation arrives late. Durable-rules
keeps nothing between messages (each fact is retracted straight after its
firings), so the engine's state is all Python: per-patient derived state,
facts and episodes (:class:`~.state.PatientState`) and open deadlines.

Bytes are pickles, valid only for the same engine code: :data:`CODE_VERSION`
is the sha256 of this package's sources, and a service keys every stored
snapshot by it and by the pack's sha256, rebuilding from its journal when
either differs (never ``hash()``, which changes per process).
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

from .deadlines import Deadline
from .state import PatientState

__all__ = ["CODE_VERSION", "EngineSnapshot", "PatientSession", "code_version", "dumps", "loads"]


@dataclass(frozen=True, slots=True)
class PatientSession:
    """One patient's whole evaluation state (a deep copy, safe to keep)."""

    state: PatientState
    deadlines: tuple[Deadline, ...]

    def copy(self) -> PatientSession:
        return copy.deepcopy(self)


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Every patient's session plus the engine's own bookkeeping."""

    patients: dict[str, PatientState]
    deadlines: tuple[Deadline, ...]
    watermark: float
    error_count: int


def code_version() -> str:
    """sha256 over the engine's source files: a snapshot of other code is never loaded."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(b"\x1f")
        h.update(path.read_bytes())
    return h.hexdigest()


CODE_VERSION = code_version()


def dumps(value: object) -> bytes:
    """A snapshot or session as bytes (pickle protocol 5)."""
    return pickle.dumps(value, protocol=5)


def loads(data: bytes) -> object:
    """The inverse of :func:`dumps`; only for bytes this service wrote itself."""
    return pickle.loads(data)
