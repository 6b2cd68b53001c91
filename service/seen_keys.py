"""Which dedupe keys the journal may hold, answered without a query.

The MLLP listener asks, before mapping each message, whether its key
(``MSH-3|MSH-4|MSH-10``) was journaled before, so a resend never reaches the
feed's STOP/START pairing twice. Asking SQLite costs little by itself, but the
query lets go of the interpreter lock and the event loop then waits for the
journal's writer to hand it back: in one A/B run over 8 connections, skipping it
took the closed-loop rate from about 1,600 to 1,900 messages/s. Almost every
message is new, so a Bloom filter answers "never journaled" for it in memory;
only a key the filter may hold (a resend, or about one new key in a thousand) is
asked of SQLite.

A Bloom filter never forgets a key it was given, so "not there" is exact; it
only errs towards "maybe", which the query then settles. Each layer is sized
for a 0.1 % false "maybe" (about 1.8 MB per million keys); past its capacity a
layer twice its size is added, so a journal that outgrows its first sizing has
a few layers, each adding its 0.1 %.
"""

from __future__ import annotations

import hashlib
import math
import threading

__all__ = ["SeenKeys"]

_ERROR_RATE = 0.001


class _Layer:
    __slots__ = ("bits", "capacity", "count", "hashes", "size")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = max(64, math.ceil(-capacity * math.log(_ERROR_RATE) / math.log(2) ** 2))
        self.hashes = max(1, round(self.size / capacity * math.log(2)))
        self.bits = bytearray((self.size + 7) // 8)
        self.count = 0

    def add(self, h1: int, h2: int) -> None:
        bits, size = self.bits, self.size
        for i in range(self.hashes):
            p = (h1 + i * h2) % size
            bits[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def may_hold(self, h1: int, h2: int) -> bool:
        bits, size = self.bits, self.size
        for i in range(self.hashes):
            p = (h1 + i * h2) % size
            if not bits[p >> 3] & (1 << (p & 7)):
                return False  # a new key usually stops here, at the first or second bit
        return True


def _hash(key: str) -> tuple[int, int]:
    """Two 64-bit hashes of the key (double hashing gives the k positions); stable across
    runs and processes, unlike ``hash()``."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


class SeenKeys:
    """A growing Bloom filter of dedupe keys; :attr:`complete` once every key already in
    the journal has been added (until then a "no" means nothing: ask the journal)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self._layers = [_Layer(capacity)]
        self._lock = threading.Lock()  # adds come from the writer and the loader at once
        self.complete = False

    def add(self, key: str) -> None:
        h1, h2 = _hash(key)
        with self._lock:
            layer = self._layers[-1]
            if layer.count >= layer.capacity:
                layer = _Layer(layer.capacity * 2)
                self._layers.append(layer)
            layer.add(h1, h2)

    def add_all(self, keys: list[str]) -> None:
        for key in keys:
            self.add(key)

    def may_hold(self, key: str) -> bool:
        """False: this key was never added. True: it may have been (ask the journal)."""
        h1, h2 = _hash(key)
        return any(layer.may_hold(h1, h2) for layer in self._layers)

    def __len__(self) -> int:
        return sum(layer.count for layer in self._layers)

    @property
    def layers(self) -> int:
        return len(self._layers)
