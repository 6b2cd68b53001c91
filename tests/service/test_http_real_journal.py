"""The API against the real SQLite journal (once service/journal.py is on the branch).

The other HTTP tests use an in-memory fake; this one checks that the fake's contract is
the journal's: what a POST stores, how a resend and a conflicting resend come back, and
that findings and backlog read from another thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from http_fakes import event_json, serving

journal_module = pytest.importorskip(
    "pumpguard.service.journal", reason="service/journal.py is not merged into this branch yet"
)


@pytest.mark.asyncio
async def test_posts_to_the_real_journal_are_stored_deduplicated_and_conflicts_kept(
    tmp_path: Path,
) -> None:
    journal = journal_module.Journal(tmp_path / "journal.db")
    body = b"\n".join(
        json.dumps(e).encode()
        for e in (event_json("a"), {"event_id": "b"}, event_json("a"), event_json("a", weight_kg=9))
    )
    try:
        async with serving(journal=journal, inbound=journal_module.Inbound) as api:
            headers = {"Content-Type": "application/x-ndjson"}
            async with api.session.post(f"{api.url}/events", data=body, headers=headers) as resp:
                results = (await resp.json())["results"]
            async with api.session.get(f"{api.url}/findings") as found:
                assert (await found.json()) == {"count": 0, "findings": []}
            async with api.session.get(f"{api.url}/metrics") as scraped:
                assert scraped.status == 200
        assert [r["status"] for r in results] == ["accepted", "rejected", "duplicate", "rejected"]
        assert results[3]["reason"] == "conflicting content for event_id a"
        stats = journal.stats()
        assert stats.by_outcome == {"accepted": 1, "rejected": 1}
        assert stats.conflicting_resends == 1
    finally:
        journal.close()
