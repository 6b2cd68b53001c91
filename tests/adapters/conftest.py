"""Shared fixtures for the adapter tests: the third-party samples, copied in tests/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
IPEC = SAMPLES / "ihe" / "IPEC_PCD-10_ORU_R42_delivery_start_IHE_Suppl_Rev1.5.hl7"


@pytest.fixture(name="samples")
def _samples() -> Path:
    return SAMPLES


@pytest.fixture(name="ipec")
def _ipec() -> str:
    """The IHE IPEC PCD-10 delivery-start example as text with CR segment ends."""
    return IPEC.read_bytes().decode("ascii")
