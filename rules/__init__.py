"""Rule packs as data. ``PACKS`` maps a bundled pack's name to its folder."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKS", "default_pack"]

_HERE = Path(__file__).resolve().parent

PACKS: dict[str, Path] = {"blincyto": _HERE / "blincyto"}


def default_pack() -> Path:
    """The bundled Blincyto pack."""
    return PACKS["blincyto"]
