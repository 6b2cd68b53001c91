"""The one reject record: a record that could not be used, where it was and why.

Sources make them (a line that does not parse), replay makes them (an event id
seen with two contents), and the CLI reports them: the same type end to end.
It lives in the engine because the engine may not import adapters; the adapters
re-export it as :class:`pumpguard.adapters.base.Reject`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["Reject"]


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that could not become a canonical event: where it was and why.

    ``level="warning"`` marks a record that was used but carried something we
    ignored (unknown fields); it is reported and does not fail the run.
    """

    source: str
    position: str
    reason: str
    level: Literal["error", "warning"] = "error"
    event_id: str | None = None

    def to_json(self) -> str:
        """One JSONL line for the rejects file."""
        text = json.dumps(asdict(self), ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Half a UTF-16 pair from the input, quoted in a reason: escaped, never a crash.
            text = json.dumps(asdict(self))
        return text

    def __str__(self) -> str:
        return f"{self.source}:{self.position}: {self.level}: {self.reason}"
