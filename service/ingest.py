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

import asyncio
import hashlib
import pickle
import time
from pathlib import Path

import structlog
from pumpguard.adapters import hl7v2
from pumpguard.adapters.config import AdapterConfig
from pumpguard.adapters.hl7v2.live import MappedMessage, MessageMapper
from pumpguard.engine.clock import Clock
from pumpguard.engine.findings import utc

from .journal import Inbound, Journal
from .metrics import Metrics

__all__ = ["MAPPER_EVERY", "MllpIngest", "inbound_of", "mapper_key"]

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


MAPPER_EVERY = 500
"""Messages between two snapshots of the HL7 mapper's per-feed state."""


def mapper_key(config: AdapterConfig | None) -> tuple[str, str]:
    """(snapshot kind, code version) of the mapper's state: its config and the adapters' code."""
    h = hashlib.sha256()
    h.update((config or AdapterConfig()).model_dump_json().encode())
    kind = "hl7-mapper:" + h.hexdigest()[:16]
    code = hashlib.sha256()
    for path in sorted(Path(hl7v2.__file__).parent.glob("*.py")):
        code.update(path.read_bytes())
    return kind, code.hexdigest()


class MllpIngest:
    """The MLLP listener's handler: map, journal, then answer.

    The mapper's per-feed state (a pump's program, a STOP waiting for its START)
    spans messages, so it is snapshotted beside the engine's, at a moment when no
    message is between mapping and journaling: the snapshot then stands for
    exactly the messages journaled up to its sequence number, and a restart maps
    the messages after it again (their outputs discarded) to be where it was.
    """

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        metrics: Metrics,
        config: AdapterConfig | None,
        *,
        snapshot_every: int = MAPPER_EVERY,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.metrics = metrics
        self.mapper = MessageMapper(config)
        self.kind, self.code = mapper_key(config)
        self.every = snapshot_every
        self.last_seq = 0
        self._in_flight = 0
        self._since = 0
        self._open = asyncio.Event()
        self._open.set()

    def recover(self) -> int:
        """Restore the newest mapper snapshot and map the messages after it; how many."""
        snap = self.journal.latest_snapshot(self.kind, self.code)
        if snap is not None:
            seq, blob = snap
            mapper = pickle.loads(blob)
            if isinstance(mapper, MessageMapper):
                self.mapper, self.last_seq = mapper, seq
        count = 0
        for message in self.journal.messages(channel="mllp", after_seq=self.last_seq):
            self.mapper.map(message.raw)
            self.last_seq = message.seq
            count += 1
        return count

    def snapshot(self) -> None:
        """Store the mapper's state as of :attr:`last_seq` (call only with nothing in flight)."""
        if self.last_seq:
            blob = pickle.dumps(self.mapper, protocol=5)
            self.journal.save_snapshot(self.last_seq, self.kind, self.code, blob)
        self._since = 0

    async def __call__(self, data: bytes, peer: str) -> bytes:
        started = time.perf_counter()
        await self._open.wait()
        now = self.clock.now()
        key = self.mapper.dedupe_key(data)
        if key is not None and self.journal.answer_of(key) is not None:
            resend = Inbound("mllp", peer, data, now, key, (), "accepted", "resend")
            appended = await self.journal.append(resend)  # counted as a resend, not mapped
            self.metrics.message("mllp", "duplicate")
            original = appended.original
            return original.ack if original is not None and original.ack else b""
        self._in_flight += 1
        try:
            mapped = self.mapper.map(data)
            ack = mapped.ack(utc(now))
            inbound = inbound_of(mapped, peer, now, ack)
            appended = await self.journal.append(inbound)
            self.last_seq = max(self.last_seq, appended.message_seq)
        finally:
            self._in_flight -= 1
            self._since += 1
            self._maybe_snapshot()
        if appended.duplicate and appended.original is not None:
            self.metrics.message("mllp", "duplicate")
            return appended.original.ack or ack
        self.metrics.message("mllp", inbound.outcome)
        self.metrics.ack_latency(time.perf_counter() - started)
        return ack

    def _maybe_snapshot(self) -> None:
        """Snapshot at a quiet moment; past 4 intervals, hold new mapping until one comes."""
        if self._since < self.every:
            return
        if self._in_flight == 0:
            self.snapshot()
            self._open.set()
        elif self._since >= 4 * self.every:
            self._open.clear()
