"""The rule-pack schema: what a pack folder may say, checked by pydantic.

A pack is ``pack.yaml`` (name, version, requirements, codes, parameters,
editions, declared facts, named conditions) plus rule files. Actions are a
closed set of verbs (raise, open_deadline, close_deadline, set, end_episode):
nothing in a pack names Python code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .findings import Severity

__all__ = [
    "ActionSpec",
    "CodeSpec",
    "DeadlineAction",
    "EditionSpec",
    "FactSpec",
    "NearMissSpec",
    "PackSpec",
    "ParamSpec",
    "RaiseAction",
    "RuleSpec",
    "SetAction",
    "SiteSpec",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    value: Any
    unit: str | None = None
    doc: str = ""


class CodeSpec(_Strict):
    severity: Severity
    meaning: str = ""


class EditionSpec(_Strict):
    title: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class FactSpec(_Strict):
    kind: Literal["num", "bool", "str"]
    doc: str = ""


class RaiseAction(_Strict):
    code: str
    severity: Severity | None = None
    message: str
    action: str


class DeadlineAction(_Strict):
    """Open a deadline ``after_h`` from now.

    ``at_due`` says what happens to events at exactly the due time: by default
    they are applied first (a window "within 1 h" includes its end); with
    ``before_events`` the deadline fires first (a state that must last "at least
    72 h" has lasted long enough at 72 h).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    after_h: float | str
    carry: dict[str, str] = Field(default_factory=dict)
    at_due: Literal["after_events", "before_events"] = "after_events"


class SetAction(_Strict):
    """Set a fact to a constant (``value``) or to an expression's value (``expr``)."""

    fact: str
    value: float | bool | str | None = None
    expr: str | None = None


class NearMissSpec(_Strict):
    """When a rule did not fire but came close, and how to say so."""

    when: str
    message: str


class ActionSpec(_Strict):
    """One verb. ``end_episode: G`` ends the open episode of finding group ``G``.

    A state finding (``once_per``) is raised once per episode: again only when
    its key changes, or after its episode ended. An episode ends when a rule
    with ``end_episode`` matches an event and no rule of that group matched the
    same event, i.e. the state was seen and it was right.
    """

    raise_: RaiseAction | None = Field(default=None, alias="raise")
    open_deadline: DeadlineAction | None = None
    close_deadline: str | None = None
    set: SetAction | None = None
    end_episode: str | None = None

    @model_validator(mode="after")
    def _one_verb(self) -> ActionSpec:
        verbs = ("raise_", "open_deadline", "close_deadline", "set", "end_episode")
        chosen = [k for k in verbs if getattr(self, k)]
        if len(chosen) != 1:
            msg = (
                "each action has exactly one verb: raise, open_deadline, close_deadline, "
                "set or end_episode"
            )
            raise ValueError(msg)
        return self


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9-]+$")
    requirement: str
    title: str
    citation: str
    on: list[str] = Field(min_length=1)
    when: str = "true"
    then: list[ActionSpec] = Field(min_length=1)
    once_per: str | list[str] | None = None
    once_group: str | None = None
    editions: list[str] | None = None
    modes: list[Literal["replay", "live", "drill"]] | None = None
    near_miss: NearMissSpec | None = None

    @property
    def once_keys(self) -> tuple[str, ...]:
        if self.once_per is None:
            return ()
        return (self.once_per,) if isinstance(self.once_per, str) else tuple(self.once_per)


class PackSpec(_Strict):
    name: str
    version: str
    title: str = ""
    source: str = ""
    default_edition: str
    requirements: dict[str, str]
    codes: dict[str, CodeSpec]
    parameters: dict[str, ParamSpec]
    editions: dict[str, EditionSpec]
    facts: dict[str, FactSpec] = Field(default_factory=dict)
    conditions: dict[str, str] = Field(default_factory=dict)
    rule_files: list[str] = Field(min_length=1)


class SiteSpec(_Strict):
    site: str
    parameters: dict[str, Any] = Field(default_factory=dict)
