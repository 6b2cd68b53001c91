"""Sink configuration: the ``sinks:`` list as typed records, and the transports built from it."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pumpguard.adapters.transports import (
    AlarmLink,
    JsonlFileTransport,
    MllpAlarmTransport,
    StructlogTransport,
    WebhookTransport,
)
from pumpguard.service.delivery import (
    JsonlSinkConfig,
    MllpSinkConfig,
    SinkConfigError,
    WebhookSinkConfig,
    build_transports,
    parse_sink_configs,
)
from pydantic import BaseModel

SINKS = """
sinks:
  - {type: jsonl, path: findings.jsonl}
  - {type: structlog}
  - {type: webhook, name: ehr, url: "https://ehr.example/hook", format: fhir, token: t0k}
  - {type: mllp, name: acm, host: 10.0.0.5, port: 2576, timeout_s: 3}
"""


async def fake_connect(host: str, port: int, ctx: ssl.SSLContext | None, t: float) -> AlarmLink:
    raise AssertionError("not connected by building")


def test_yaml_sinks_become_typed_configs_with_default_names() -> None:
    configs = parse_sink_configs(yaml.safe_load(SINKS)["sinks"])
    assert [c.name for c in configs] == ["jsonl", "structlog", "ehr", "acm"]
    jsonl, _, ehr, acm = configs
    assert isinstance(jsonl, JsonlSinkConfig)
    assert jsonl.path == Path("findings.jsonl")
    assert isinstance(ehr, WebhookSinkConfig)
    assert (ehr.format, ehr.token) == ("fhir", "t0k")
    assert isinstance(acm, MllpSinkConfig)
    assert (acm.host, acm.port, acm.timeout_s) == ("10.0.0.5", 2576, 3.0)


def test_each_config_builds_its_transport() -> None:
    configs = parse_sink_configs(yaml.safe_load(SINKS)["sinks"])
    transports = build_transports(configs, mllp_connect=fake_connect)
    assert [type(t) for t in transports.values()] == [
        JsonlFileTransport,
        StructlogTransport,
        WebhookTransport,
        MllpAlarmTransport,
    ]
    hook = transports["ehr"]
    assert isinstance(hook, WebhookTransport)
    assert (hook.url, hook.format) == ("https://ehr.example/hook", "fhir")


def test_two_sinks_with_one_name_are_refused() -> None:
    with pytest.raises(SinkConfigError, match="two sinks are named 'jsonl'"):
        parse_sink_configs([{"type": "jsonl", "path": "a"}, {"type": "jsonl", "path": "b"}])


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"type": "kafka"}, "types: jsonl, structlog, webhook, mllp"),
        ({"type": "webhook", "url": "ftp://x"}, "url"),
        ({"type": "mllp", "host": "h", "port": 0}, "port"),
        ({"type": "jsonl"}, "path"),
        ({"type": "jsonl", "path": "a", "url": "http://x"}, "url"),
    ],
)
def test_a_bad_sink_entry_says_which_field(entry: dict[str, object], says: str) -> None:
    with pytest.raises(SinkConfigError, match="sinks") as info:
        parse_sink_configs([entry])
    assert says in info.value.message


def test_webhook_token_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"type": "webhook", "url": "http://127.0.0.1:1/h", "token_env": "PG_HOOK_TOKEN"}
    configs = parse_sink_configs([entry])
    with pytest.raises(SinkConfigError, match="PG_HOOK_TOKEN"):
        build_transports(configs)
    monkeypatch.setenv("PG_HOOK_TOKEN", "from-env")
    hook = build_transports(configs)["webhook"]
    assert isinstance(hook, WebhookTransport)
    assert hook.token == "from-env"


def test_tls_files_that_do_not_load_are_a_config_error(tmp_path: Path) -> None:
    entry = {"type": "webhook", "url": "https://x/h", "tls": {"ca": str(tmp_path / "none.pem")}}
    with pytest.raises(SinkConfigError, match="TLS files cannot be loaded"):
        build_transports(parse_sink_configs([entry]))


class FlatSpec(BaseModel):
    """The shape of the service config's SinkSpec: one flat record with a type."""

    name: str
    type: Literal["jsonl", "structlog", "webhook", "mllp"]
    path: Path | None = None
    url: str | None = None
    format: Literal["json", "fhir"] = "json"
    token: str | None = None
    host: str | None = None
    port: int | None = None
    timeout_s: float = 10.0


def test_flat_service_specs_build_the_same_transports() -> None:
    specs = [
        FlatSpec(name="findings", type="jsonl", path=Path("f.jsonl")),
        FlatSpec(name="log", type="structlog"),
        FlatSpec(name="ehr", type="webhook", url="http://127.0.0.1:1/h", format="fhir"),
        FlatSpec(name="alarms", type="mllp", host="127.0.0.1", port=2576),
    ]
    transports = build_transports(specs, mllp_connect=fake_connect)
    assert list(transports) == ["findings", "log", "ehr", "alarms"]
    assert isinstance(transports["alarms"], MllpAlarmTransport)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (FlatSpec(name="f", type="jsonl", path=Path("f"), url="http://x"), "url do not apply"),
        (FlatSpec(name="w", type="webhook"), "url"),
        (FlatSpec(name="m", type="mllp", host="h"), "port"),
    ],
)
def test_a_flat_spec_missing_or_misplacing_a_field_is_refused(spec: FlatSpec, says: str) -> None:
    with pytest.raises(SinkConfigError, match=f"sink '{spec.name}'") as info:
        build_transports([spec], mllp_connect=fake_connect)
    assert says in info.value.message
