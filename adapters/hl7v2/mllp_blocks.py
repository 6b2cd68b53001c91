"""MLLP blocks: a byte stream cut into ``0x0B ... 0x1C 0x0D`` frames, bounded, nothing lost.

The live listener (:mod:`pumpguard.adapters.mllp`) feeds what a socket gives
to a :class:`Framer` and answers each item: a complete frame goes to the
mapping; an oversized one, bytes between frames, or a frame cut off by the
next start byte are answered ``AR`` by the listener itself. Memory stays
bounded whatever the peer sends: past the limit only the first bytes (the
MSH the ``AR`` needs) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CR",
    "END",
    "START",
    "CutOff",
    "Frame",
    "Framer",
    "Garbage",
    "Item",
    "MiB",
    "Oversize",
    "frame",
]

START, END, CR = b"\x0b", b"\x1c", b"\r"
MiB = 1024 * 1024
_HEAD = 4096  # what is kept of an oversized message: enough for its MSH, to answer it


def frame(message: bytes) -> bytes:
    """One message in an MLLP block: start byte, the message, end byte and CR."""
    return START + message + END + CR


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete block's content."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Oversize:
    """A block past the size limit: its first bytes (for the MSH) and its full size."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes outside any block: the first of them and how many there were."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class CutOff:
    """A block that a new start byte interrupted before its end byte."""

    head: bytes
    size: int


Item = Frame | Oversize | Garbage | CutOff


class Framer:
    """MLLP framing over a byte stream, bounded: feed bytes, get what they complete.

    Inside a block at most ``max_message_bytes`` are kept (then only the head);
    outside, whitespace between blocks is ignored and anything else is garbage,
    reported when the next start byte arrives or when :meth:`flush_garbage` is called.
    """

    def __init__(self, max_message_bytes: int = MiB) -> None:
        self.max = max_message_bytes
        self.inside = False
        self._buf = bytearray()
        self._size = 0
        self._after_end = False
        self._junk = bytearray()
        self._junk_size = 0

    @property
    def garbage_pending(self) -> bool:
        return self._junk_size > 0

    def feed(self, data: bytes) -> list[Item]:
        """What these bytes complete, in order."""
        out: list[Item] = []
        i = 0
        if self._after_end and data:
            self._after_end = False
            i = 1 if data[:1] == CR else 0
        while i < len(data):
            i = self._in_block(data, i, out) if self.inside else self._outside(data, i, out)
        return out

    def _outside(self, data: bytes, i: int, out: list[Item]) -> int:
        j = data.find(START, i)
        stop = len(data) if j < 0 else j
        self._add_junk(data[i:stop], out)
        if j < 0:
            return len(data)
        if (junk := self.flush_garbage()) is not None:
            out.append(junk)
        self.inside, self._size = True, 0
        self._buf.clear()
        return j + 1

    def _in_block(self, data: bytes, i: int, out: list[Item]) -> int:
        ends = [k for k in (data.find(END, i), data.find(START, i)) if k >= 0]
        k = min(ends) if ends else len(data)
        self._keep(data[i:k])
        if k == len(data):
            return k
        if data[k : k + 1] == START:  # a new block began before this one ended
            out.append(CutOff(bytes(self._buf[:_HEAD]), self._size))
            self._size = 0
            self._buf.clear()
            return k + 1
        out.append(self._complete())
        self.inside = False
        if k + 1 < len(data):
            return k + 2 if data[k + 1 : k + 2] == CR else k + 1
        self._after_end = True
        return k + 1

    def _keep(self, part: bytes) -> None:
        # Past the limit only the head stays (the MSH, to answer the message), never the rest.
        self._size += len(part)
        limit = self.max if self._size <= self.max else _HEAD
        if len(self._buf) > limit:
            del self._buf[limit:]
        room = limit - len(self._buf)
        if room > 0:
            self._buf += part[:room]

    def _complete(self) -> Frame | Oversize:
        data = bytes(self._buf)
        self._buf.clear()
        if self._size > self.max:
            return Oversize(data[:_HEAD], self._size)
        return Frame(data)

    def _add_junk(self, part: bytes, out: list[Item]) -> None:
        if not self._junk_size and not part.strip(b" \t\r\n"):
            return  # blank bytes between blocks carry nothing
        self._junk_size += len(part)
        if len(self._junk) < _HEAD:
            self._junk += part[: _HEAD - len(self._junk)]
        if self._junk_size > self.max and (junk := self.flush_garbage()) is not None:
            out.append(junk)

    def flush_garbage(self) -> Garbage | None:
        """The garbage seen since the last block, if any (and forget it)."""
        if not self._junk_size:
            return None
        junk = Garbage(bytes(self._junk), self._junk_size)
        self._junk.clear()
        self._junk_size = 0
        return junk

    def pending(self) -> int:
        """Bytes of an unfinished block so far (0 when outside a block)."""
        return self._size if self.inside else 0
