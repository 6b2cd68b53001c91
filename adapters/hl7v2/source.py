"""Hl7Source: an HL7 v2 file or bytes as an :class:`EventSource`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pumpguard.adapters.base import BytesSource, Record, Tally
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2.reader import Hl7Reader

__all__ = ["Hl7Source"]


class Hl7Source(BytesSource):
    """An HL7 v2 file (or bytes): one message after another, MLLP-framed or not.

    ``position`` names the message the record just yielded came from (read by the
    CLI when replay refuses an event later, e.g. a duplicate event_id); ``tally``
    counts one fate per message, and per note or stray line between messages.
    """

    name = "hl7"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        data: bytes | None = None,
        label: str | None = None,
        config: AdapterConfig | None = None,
    ) -> None:
        super().__init__(path, data=data, label=label)
        self.config = config

    def __iter__(self) -> Iterator[Record]:
        data = self.read_bytes()
        self.tally = Tally()
        reader = Hl7Reader(self.config, self.label, tally=self.tally)
        for position, record in reader.read_located(data):
            self.position = position
            yield record
