"""One small interface for every input format and every finding target.

Shaped like httpx's transports: a source only reads and maps (it knows a format,
never a clinical rule); a sink only delivers. The CLI and the drills pick them by
name or by sniffing the input, and nothing downstream knows which one ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from pumpguard.adapters.common import quote
from pumpguard.engine.errors import InputError
from pumpguard.engine.events import Event
from pumpguard.engine.findings import Finding
from pumpguard.engine.rejects import Reject  # one reject type from the source to the CLI

__all__ = [
    "STOPPED",
    "BytesSource",
    "EventSource",
    "FindingSink",
    "Record",
    "Reject",
    "Tally",
    "drain",
    "fate_of",
    "unknown_fields_warning",
]


Record = Event | Reject
"""What a source yields: an event, or a reject in its place."""


@dataclass(slots=True)
class Tally:
    """The fate of every record a source read: so none is ever lost in silence.

    A record is one JSONL line, one HL7 message, one FHIR resource or one CSV
    row. Each ends in exactly one bucket, by precedence: ``rejected`` when it
    yielded no event because of an error; ``events`` when it yielded at least
    one event (warnings about it may follow); ``warned`` when it yielded no
    event by design but said so with a warning (an ACK, a status that changes
    nothing). So ``records == events + warned + rejected`` always holds, and a
    test can assert it for any input.
    """

    records: int = 0
    events: int = 0
    warned: int = 0
    rejected: int = 0

    def note(self, fate: Literal["event", "warning", "reject"]) -> None:
        """Count one record's fate (call once per record)."""
        self.records += 1
        if fate == "event":
            self.events += 1
        elif fate == "warning":
            self.warned += 1
        else:
            self.rejected += 1

    @property
    def balanced(self) -> bool:
        return self.records == self.events + self.warned + self.rejected


Fate = Literal["event", "warning", "reject"]


def fate_of(records: Sequence[Record]) -> Fate:
    """The one fate of a record from what it yielded, by :class:`Tally`'s precedence.

    A record that yielded nothing at all counts as rejected: a source must say
    why it dropped something, and this keeps a silent drop visible in the tally.
    """
    if any(not isinstance(r, Reject) for r in records):
        return "event"
    if not records or any(isinstance(r, Reject) and r.level == "error" for r in records):
        return "reject"
    return "warning"


def unknown_fields_warning(event: Event, source: str, position: str) -> Reject | None:
    """A warning for fields version 1 does not define, so they are never ignored in silence."""
    if not event.__pydantic_extra__:  # the usual event, without building the list
        return None
    unknown = event.unknown_fields
    return Reject(
        source=source,
        position=position,
        reason="unknown field(s) ignored: " + ", ".join(unknown),
        level="warning",
        event_id=event.event_id,
    )


class EventSource:
    """Reads one input and yields canonical events or rejects, in input order.

    A plain class rather than an ABC, like httpx's ``BaseTransport``: one method
    to implement, plus the context-manager lifecycle.
    """

    name: str = "source"
    label: str = ""
    """The input as the user named it (a path, or ``<stdin>``): every reject carries it."""
    tally: Tally
    """Filled while iterating: one fate per record read (see :class:`Tally`)."""
    position: str = ""
    """Where the record last yielded came from (``line 7``, ``entry 3``, ``row 4 (line 5)``).

    Set before each yield, so a caller that gets an event can say where it was
    read (a duplicate id is reported there) and, should the source fail, where.
    """

    def __iter__(self) -> Iterator[Record]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the input; safe to call twice."""

    def __enter__(self) -> EventSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


STOPPED = "reading stopped here: "
"""How the reject that ends a failed source begins (see :func:`drain`)."""


def drain(source: EventSource) -> Iterator[tuple[Record, str]]:
    """Every record of ``source`` with where it was read; a failing source ends in a reject.

    One input that breaks must cost what is left of that input, never the run:
    so an exception from the source (a defect, or an input error it did not turn
    into a reject) becomes a last reject naming the position reached, and the
    caller goes on with its other inputs. Only the source is guarded: what the
    caller does with a record is not.
    """
    n = 0
    with source:
        records = iter(source)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as exc:
                where = source.position or (f"after record {n}" if n else "start of file")
                if isinstance(exc, InputError):
                    why = exc.message
                elif isinstance(exc, OSError):  # the file went away or a disk failed
                    why = f"the input cannot be read ({exc.strerror or exc})"
                else:
                    why = (
                        f"{type(exc).__name__}: {quote(str(exc))} "
                        "(a defect in pumpguard; please report it)"
                    )
                reason = f"{STOPPED}{why}; the rest of this input was not read"
                yield Reject(source.label or source.name, where, reason), where
                return
            n += 1
            yield record, source.position or f"record {n}"


class BytesSource(EventSource):
    """A source that reads one file, or the same bytes given in memory (tests, standard input).

    Every file format shares this: one of ``path`` and ``data``, a label for
    rejects (the path, else the format's name), and the bytes read at iteration.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        data: bytes | None = None,
        label: str | None = None,
    ) -> None:
        if path is None and data is None:
            msg = f"{type(self).__name__} needs a path or data"
            raise ValueError(msg)
        self.path = Path(path) if path is not None else None
        self._data = data
        self.label = label or (str(path) if path is not None else self.name)
        self.tally = Tally()
        self.position = ""

    def read_bytes(self) -> bytes:
        """The whole input: the bytes given, else the file's."""
        if self._data is not None:
            return self._data
        assert self.path is not None  # __init__ requires one of the two
        return self.path.read_bytes()


class FindingSink:
    """Delivers findings somewhere: a file, a log, an alarm manager."""

    def write(self, finding: Finding) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release; safe to call twice."""

    def __enter__(self) -> FindingSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
