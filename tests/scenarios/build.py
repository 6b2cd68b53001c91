"""Writes the requirement scenarios: canonical JSONL files `pumpguard replay` runs as they are.

    .venv/bin/python tests/scenarios/build.py

Each scenario is a clean course except for the one thing it tests, so the
exact list of finding codes it must raise is known. For every requirement there
is a case that fires, a case that must stay silent, and the boundary.
``expected.yaml`` lists each file with its requirement, edition and codes;
``tests/rules/test_scenarios.py`` replays them. The files are committed; a test checks
that this script still writes the same bytes.

The cases live beside it, by requirement: ``cases_bags``, ``cases_care``,
``cases_reactions``, ``cases_review_a`` and ``cases_review_b``; ``scn`` holds
the stream builder and the registry they fill.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cases_bags
import cases_care
import cases_reactions
import cases_review_a
import cases_review_b
import yaml
from pumpguard.engine.builder import to_line
from scn import SCENARIOS

HERE = Path(__file__).resolve().parent
CASES = (cases_bags, cases_care, cases_reactions, cases_review_a, cases_review_b)
"""Imported for their ``@scenario`` registrations."""


def main() -> None:
    expected: dict[str, Any] = {}
    for make in SCENARIOS:
        name, requirement, codes, edition, s = make()
        path = HERE / f"{name}.jsonl"
        path.write_text("".join(to_line(e) + "\n" for e in s.sorted()))
        expected[name] = {"requirement": requirement, "edition": edition, "codes": codes}
    (HERE / "expected.yaml").write_text(
        "# Written by build.py: each scenario file, its requirement, edition and exact codes.\n"
        + yaml.safe_dump(expected, sort_keys=True, width=100)
    )


if __name__ == "__main__":
    main()
