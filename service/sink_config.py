"""Sink configuration: the service YAML's ``sinks:`` list as typed records, and their transports.

::

    sinks:
      - {type: jsonl, path: /var/lib/pumpguard/findings.jsonl}
      - {type: structlog, stream: stderr}
      - {type: webhook, name: ehr, url: "https://ehr.example/fhir", format: fhir,
         token_env: EHR_TOKEN, tls: {ca: /etc/pumpguard/ca.pem}}
      - {type: mllp, name: acm, host: acm.example, port: 2575, tls: {ca: /etc/pumpguard/ca.pem}}

A sink's ``name`` (its type by default) names its outbox in the journal, so it
must stay the same across restarts for pending items to reach it.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal

import structlog
from pumpguard.adapters.transports import (
    AlarmLink,
    JsonlFileTransport,
    MllpAlarmTransport,
    StructlogTransport,
    Transport,
    WebhookFormat,
    WebhookTransport,
)
from pumpguard.engine.errors import PumpguardError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "JsonlSinkConfig",
    "MllpConnect",
    "MllpSinkConfig",
    "SinkConfig",
    "SinkConfigError",
    "StructlogSinkConfig",
    "TlsConfig",
    "WebhookSinkConfig",
    "as_sink_config",
    "build_transports",
    "open_mllp_client",
    "parse_sink_configs",
]


class SinkConfigError(PumpguardError):
    """The service YAML's ``sinks:`` list names a sink that cannot be built; says which and why."""


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsConfig(_Config):
    """Client TLS: the CA bundle to trust (system default when absent), and a client certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A verifying client context (hostname checked); a bad path raises SinkConfigError."""
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        except (OSError, ssl.SSLError) as exc:
            msg = f"TLS files cannot be loaded ({exc}); check ca, cert and key"
            raise SinkConfigError(msg) from exc
        return ctx


class JsonlSinkConfig(_Config):
    type: Literal["jsonl"]
    name: str = "jsonl"
    path: Path


class StructlogSinkConfig(_Config):
    type: Literal["structlog"]
    name: str = "structlog"
    stream: Literal["stdout", "stderr"] = "stderr"


class WebhookSinkConfig(_Config):
    type: Literal["webhook"]
    name: str = "webhook"
    url: str = Field(pattern=r"^https?://")
    format: WebhookFormat = "json"
    token: str | None = None
    token_env: str | None = None
    """An environment variable holding the bearer token (keeps it out of the YAML)."""
    tls: TlsConfig | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class MllpSinkConfig(_Config):
    type: Literal["mllp"]
    name: str = "mllp"
    host: str
    port: int = Field(ge=1, le=65535)
    tls: TlsConfig | None = None
    timeout_s: float = Field(default=10.0, gt=0)


SinkConfig = Annotated[
    JsonlSinkConfig | StructlogSinkConfig | WebhookSinkConfig | MllpSinkConfig,
    Field(discriminator="type"),
]
_SINK_LIST: TypeAdapter[list[SinkConfig]] = TypeAdapter(list[SinkConfig])
_ONE_SINK: TypeAdapter[SinkConfig] = TypeAdapter(SinkConfig)

MllpConnect = Callable[[str, int, ssl.SSLContext | None, float], Awaitable[AlarmLink]]
"""Opens an MLLP connection: host, port, TLS context, timeout (``adapters.mllp`` provides one)."""


def parse_sink_configs(data: object) -> list[SinkConfig]:
    """The ``sinks:`` list of the service YAML as typed configs, names unique."""
    if data is None:
        return []
    try:
        configs = _SINK_LIST.validate_python(data)
    except ValidationError as exc:
        msg = f"sinks: {_problems(exc, 'sinks')} (types: jsonl, structlog, webhook, mllp)"
        raise SinkConfigError(msg) from exc
    seen: set[str] = set()
    for cfg in configs:
        if cfg.name in seen:
            msg = f"sinks: two sinks are named {cfg.name!r}; give each a unique name"
            raise SinkConfigError(msg)
        seen.add(cfg.name)
    return configs


def _problems(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}[{'.'.join(str(p) for p in err['loc'])}]: {err['msg']}"
        if prefix
        else f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors()
    )


def build_transports(
    configs: Sequence[BaseModel], *, mllp_connect: MllpConnect | None = None
) -> dict[str, Transport]:
    """One transport per configured sink, by name (nothing is opened until the first delivery).

    ``configs`` are :data:`SinkConfig` records or flat sink records with the same
    fields and a ``type`` (the service config's ``SinkSpec``), checked the same way.
    MLLP sinks use ``adapters.mllp.MllpClient`` unless ``mllp_connect`` is given.
    """
    out: dict[str, Transport] = {}
    for spec in configs:
        cfg = as_sink_config(spec)
        if cfg.name in out:
            msg = f"sinks: two sinks are named {cfg.name!r}; give each a unique name"
            raise SinkConfigError(msg)
        out[cfg.name] = _build(cfg, mllp_connect or open_mllp_client)
    return out


_TYPED = (JsonlSinkConfig, StructlogSinkConfig, WebhookSinkConfig, MllpSinkConfig)
_BY_TYPE: dict[str, type[BaseModel]] = {
    "jsonl": JsonlSinkConfig,
    "structlog": StructlogSinkConfig,
    "webhook": WebhookSinkConfig,
    "mllp": MllpSinkConfig,
}


def as_sink_config(spec: BaseModel) -> SinkConfig:
    """A flat sink record as its typed config; a field set that its type cannot use is an error."""
    if isinstance(spec, _TYPED):
        return spec
    data = spec.model_dump(exclude_none=True)
    model = _BY_TYPE.get(str(data.get("type")))
    if model is None:
        kind = data.get("type")
        msg = f"sink {data.get('name')!r}: unknown type {kind!r} (jsonl, structlog, webhook, mllp)"
        raise SinkConfigError(msg)
    stray = sorted(k for k in spec.model_fields_set if k in data and k not in model.model_fields)
    if stray:
        msg = f"sink {data.get('name')!r}: {', '.join(stray)} do not apply to a {data['type']} sink"
        raise SinkConfigError(msg)
    kept = {k: v for k, v in data.items() if k in model.model_fields}
    try:
        cfg = _ONE_SINK.validate_python(kept)
    except ValidationError as exc:
        msg = f"sink {data.get('name')!r}: {_problems(exc)}"
        raise SinkConfigError(msg) from exc
    return cfg


async def open_mllp_client(
    host: str, port: int, context: ssl.SSLContext | None, timeout_s: float
) -> AlarmLink:
    """The MLLP client of ``adapters.mllp`` (it connects on its first send)."""
    from pumpguard.adapters.mllp import MllpClient

    client: AlarmLink = MllpClient(
        host, port, ssl=context, timeout_s=timeout_s, server_hostname=host if context else None
    )
    return client


def _build(cfg: SinkConfig, mllp_connect: MllpConnect) -> Transport:
    if isinstance(cfg, JsonlSinkConfig):
        return JsonlFileTransport(cfg.path)
    if isinstance(cfg, StructlogSinkConfig):
        stream = sys.stdout if cfg.stream == "stdout" else sys.stderr
        logger = structlog.wrap_logger(
            structlog.PrintLogger(stream),
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        )
        return StructlogTransport(logger)
    if isinstance(cfg, WebhookSinkConfig):
        return WebhookTransport(
            cfg.url,
            format=cfg.format,
            token=_token(cfg),
            timeout_s=cfg.timeout_s,
            ssl=cfg.tls.context() if cfg.tls else None,
        )
    connect = mllp_connect
    host, port, timeout = cfg.host, cfg.port, cfg.timeout_s
    context = cfg.tls.context() if cfg.tls else None

    async def open_link() -> AlarmLink:
        return await connect(host, port, context, timeout)

    return MllpAlarmTransport(open_link, timeout_s=timeout)


def _token(cfg: WebhookSinkConfig) -> str | None:
    if cfg.token_env is None:
        return cfg.token
    value = os.environ.get(cfg.token_env)
    if not value:
        msg = f"sink {cfg.name!r}: environment variable {cfg.token_env} (token_env) is not set"
        raise SinkConfigError(msg)
    return value
