"""TLS on the HTTP API, with a self-signed certificate made for the test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from http_fakes import event_json, serving
from pumpguard.service.http import server_ssl_context


@pytest.fixture(name="cert")
def _cert(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (openssl is the one tool needed)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate to test TLS with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.mark.asyncio
async def test_api_over_tls_accepts_events_from_a_client_that_trusts_the_cert(
    cert: tuple[Path, Path],
) -> None:
    server = server_ssl_context(*cert)
    client = ssl.create_default_context(cafile=str(cert[0]))
    async with serving(ssl=server, client_ssl=client) as api:
        assert api.url.startswith("https://")
        async with api.session.post(f"{api.url}/events", json=event_json()) as resp:
            assert (await resp.json())["results"][0]["status"] == "accepted"


@pytest.mark.asyncio
async def test_tls_api_refuses_plain_http(cert: tuple[Path, Path]) -> None:
    async with serving(ssl=server_ssl_context(*cert)) as api:
        plain = api.url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            async with api.session.get(f"{plain}/healthz"):
                pass
        assert api.journal.messages == []
