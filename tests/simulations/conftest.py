"""Fixtures for the drill tests: packs by edition, loaded once per session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pumpguard.engine.pack import CompiledPack, load_pack
from pumpguard.rules import default_pack
from pumpguard.simulations.protocol import Protocol

_PACKS: dict[str, CompiledPack] = {}


@pytest.fixture(scope="session", name="pack_for")
def _pack_for() -> Callable[[str], CompiledPack]:
    def get(edition: str) -> CompiledPack:
        if edition not in _PACKS:
            _PACKS[edition] = load_pack(default_pack(), edition=edition)
        return _PACKS[edition]

    return get


@pytest.fixture(scope="session", name="protocol_for")
def _protocol_for(
    pack_for: Callable[[str], CompiledPack],
) -> Callable[[str], Protocol]:
    def get(edition: str) -> Protocol:
        return Protocol.from_pack(pack_for(edition))

    return get
