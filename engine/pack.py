"""Rule packs: YAML files validated by a schema and compiled for the engine.

The public face of three modules: :mod:`.schema` (what a pack may say),
:mod:`.loader` (folders, editions, site files, file:line errors) and
:mod:`.compiler` (type-checked conditions and actions).
"""

from __future__ import annotations

from .compiler import CompiledPack, CompiledRule
from .loader import ENGINE_PARAMETERS, load_pack
from .schema import DeadlineAction, PackSpec, RaiseAction, RuleSpec, SetAction

__all__ = [
    "ENGINE_PARAMETERS",
    "CompiledPack",
    "CompiledRule",
    "DeadlineAction",
    "PackSpec",
    "RaiseAction",
    "RuleSpec",
    "SetAction",
    "load_pack",
]
