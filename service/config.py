"""``SERVE.yaml``: what the service listens on, where it journals, which pack, where findings go.

Flags of ``pumpguard serve`` override the file; with neither, the service
listens on loopback only, journals to ``pumpguard-journal.sqlite`` in the
working directory and writes findings to ``pumpguard-findings.jsonl``.
A listener binds another address only when one is configured explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pumpguard.engine.errors import PumpguardError
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConfigError",
    "HttpListener",
    "Listener",
    "MllpListener",
    "ServeConfig",
    "SinkSpec",
    "Tls",
    "load_serve_config",
    "parse_hostport",
]


class ConfigError(PumpguardError):
    """The service's configuration does not load or contradicts itself."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tls(_Model):
    """A certificate and its key (PEM paths); ``ca`` asks clients for a certificate too."""

    cert: Path
    key: Path
    ca: Path | None = None


class Listener(_Model):
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    tls: Tls | None = None


class MllpListener(Listener):
    port: int = Field(default=2575, ge=0, le=65535)
    max_message_bytes: int = Field(default=1 << 20, ge=1024)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    partial_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=256, ge=1)


class HttpListener(Listener):
    port: int = Field(default=8080, ge=0, le=65535)
    token: str | None = None
    token_file: Path | None = None
    max_body_bytes: int = Field(default=8 << 20, ge=1024)

    def bearer(self) -> str | None:
        """The bearer token the API requires, if any (a file keeps it out of the config)."""
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token


class SinkSpec(_Model):
    """One destination for findings and withdrawals (each has its own outbox)."""

    name: str
    type: Literal["jsonl", "structlog", "webhook", "mllp"]
    path: Path | None = None
    url: str | None = None
    format: Literal["json", "fhir"] = "json"
    token: str | None = None
    host: str | None = None
    port: int | None = None
    tls: Tls | None = None
    timeout_s: float = 10.0


class Hold(_Model):
    """Deadline findings of these codes wait ``grace_s`` for late documentation before delivery."""

    codes: tuple[str, ...] = ()
    grace_s: float = Field(default=0.0, ge=0)


class ServeConfig(_Model):
    journal: Path = Path("pumpguard-journal.sqlite")
    pack: Path | None = None
    edition: str | None = None
    site: Path | None = None
    adapter_config: Path | None = None
    mllp: MllpListener | None = MllpListener()
    http: HttpListener | None = HttpListener()
    sinks: tuple[Annotated[SinkSpec, Field()], ...] = (
        SinkSpec(name="findings", type="jsonl", path=Path("pumpguard-findings.jsonl")),
    )
    late_after_s: float = Field(default=300.0, ge=0)
    clock: Literal["wall", "events"] = "wall"
    """``events``: time follows the newest event evaluated (backfills, feed tests), not the wall."""
    engine: Literal["thread", "process"] = "process"
    """``process`` (the default): the engine in a process of its own, so acknowledgements
    never share the interpreter lock with an evaluation, both cores work, and the listeners
    accept during recovery (measured: lower ACK p99.9 and a quicker restart);
    ``thread``: on a thread of the service process (one core, one process to watch)."""
    snapshot_every_inputs: int = Field(default=20_000, ge=1)
    snapshot_every_s: float = Field(default=60.0, gt=0)
    hold: Hold = Hold()
    log_patient_ids: bool = False
    drain_timeout_s: float = Field(default=10.0, gt=0)


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (loopback) or ``[::1]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        msg = f"expected HOST:PORT, got {text!r}"
        raise ConfigError(msg)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def load_serve_config(path: Path | None, overrides: dict[str, Any] | None = None) -> ServeConfig:
    """The file (if any) with the command line's overrides on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            msg = f"serve config {path} does not load: {exc}"
            raise ConfigError(msg) from exc
        if not isinstance(loaded, dict):
            msg = f"serve config {path}: expected a mapping at the top"
            raise ConfigError(msg)
        data = loaded
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in ("mllp", "http") and isinstance(value, tuple):
            section = dict(data.get(key) or {})
            section["host"], section["port"] = value
            data[key] = section
        else:
            data[key] = value
    try:
        return ServeConfig.model_validate(data)
    except ValueError as exc:
        msg = f"serve config: {exc}"
        raise ConfigError(msg) from exc
