"""What the listeners hand the journal: one received message, mapped, then journaled, then answered.

The MLLP handler maps a message with the replay's HL7 mapping (one
:class:`~pumpguard.adapters.hl7v2.live.MessageMapper`, the service's adapter
config), journals the raw bytes with what they became, and only then returns
the ACK; a resend (same MSH-3, MSH-4, MSH-10) is answered with the first
answer and not mapped again, so the feed's STOP/START pairing does not see it
twice. Rejected messages are journaled too: nothing received is lost, and
``pumpguard journal remap`` can map them again once the config is fixed.
"""

from __future__ import annotations

import time

import structlog
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2.live import MappedMessage, MessageMapper
from pumpguard.engine.clock import Clock
from pumpguard.engine.findings import utc

from .journal import Inbound, Journal
from .metrics import Metrics

__all__ = ["MllpIngest", "inbound_of"]

log = structlog.get_logger("pumpguard.service")


def inbound_of(mapped: MappedMessage, peer: str, received_at: float, ack: bytes) -> Inbound:
    """The journal's record of one mapped HL7 message."""
    code = mapped.decision.code
    if code == "AA":
        outcome = "accepted" if mapped.events else "warned"
        notes = [w.reason for w in mapped.warnings]
        reason = "; ".join(notes) if notes else None
    else:
        outcome = "rejected"
        reason = mapped.decision.text or mapped.decision.reason
    return Inbound(
        channel="mllp",
        peer=peer,
        raw=mapped.raw,
        received_at=received_at,
        dedupe_key=mapped.dedupe_key,
        events=tuple(mapped.events) if code == "AA" else (),
        outcome=outcome,
        reason=reason,
        ack=ack,
    )


class MllpIngest:
    """The MLLP listener's handler: map, journal, then answer."""

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        metrics: Metrics,
        config: AdapterConfig | None,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.metrics = metrics
        self.mapper = MessageMapper(config)

    async def __call__(self, data: bytes, peer: str) -> bytes:
        started = time.perf_counter()
        now = self.clock.now()
        key = self.mapper.dedupe_key(data)
        if key is not None and self.journal.answer_of(key) is not None:
            resend = Inbound("mllp", peer, data, now, key, (), "accepted", "resend")
            appended = await self.journal.append(resend)  # counted as a resend, not mapped
            self.metrics.message("mllp", "duplicate")
            original = appended.original
            return original.ack if original is not None and original.ack else b""
        mapped = self.mapper.map(data)
        ack = mapped.ack(utc(now))
        inbound = inbound_of(mapped, peer, now, ack)
        appended = await self.journal.append(inbound)
        if appended.duplicate and appended.original is not None:
            self.metrics.message("mllp", "duplicate")
            return appended.original.ack or ack
        self.metrics.message("mllp", inbound.outcome)
        self.metrics.ack_latency(time.perf_counter() - started)
        return ack
