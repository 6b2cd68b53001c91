"""The journal's Bloom filter of dedupe keys: never a false "not there", few false "maybe"."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from _journal_support import inbound
from hypothesis import given, settings
from hypothesis import strategies as st
from pumpguard.service.journal import Journal
from pumpguard.service.seen_keys import SeenKeys


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=40), max_size=300))
def test_every_key_added_is_held(keys: list[str]) -> None:
    seen = SeenKeys(capacity=16)  # small: the keys spill over into more layers
    seen.add_all(keys)
    assert all(seen.may_hold(k) for k in keys)


def test_false_maybe_stays_near_the_configured_rate() -> None:
    seen = SeenKeys(capacity=20_000)
    seen.add_all([f"SND|FAC|{n}" for n in range(20_000)])
    wrong = sum(seen.may_hold(f"OTHER|FAC|{n}") for n in range(20_000))
    assert wrong / 20_000 < 0.005  # sized for 0.1 %


def test_past_its_capacity_it_grows_a_layer_and_still_holds_every_key() -> None:
    seen = SeenKeys(capacity=100)
    keys = [f"k{n}" for n in range(1_000)]
    seen.add_all(keys)
    assert seen.layers > 1
    assert len(seen) == 1_000
    assert all(seen.may_hold(k) for k in keys)


def test_concurrent_adds_lose_no_key() -> None:
    seen = SeenKeys(capacity=1_000)
    parts = [[f"t{t}-{n}" for n in range(2_000)] for t in range(4)]
    threads = [threading.Thread(target=seen.add_all, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(seen.may_hold(k) for p in parts for k in p)


def test_zero_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SeenKeys(capacity=0)


def _complete(journal: Journal) -> None:
    deadline = time.monotonic() + 30
    while not journal.seen.complete:
        assert time.monotonic() < deadline, "the journal's keys were not loaded"
        time.sleep(0.01)


def test_a_reopened_journal_loads_its_keys_and_still_answers_a_resend(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        for n in range(1, 50):
            journal.append_wait(inbound(n, raw=f"MSH|{n}".encode()))
    with Journal(path, remember_keys=True) as journal:
        _complete(journal)
        assert len(journal.seen) == 49
        assert journal.answer_of("SND|FAC|7") is not None
        assert journal.answer_of("SND|FAC|999") is None


def test_a_key_is_in_the_filter_before_any_reader_can_see_its_message(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    visible_at_add: list[int] = []
    with Journal(path, remember_keys=True) as journal:
        _complete(journal)
        real_add = journal.seen.add

        def add(key: str) -> None:
            with sqlite3.connect(path) as other:  # another reader, as a resend's lookup is
                rows = other.execute("SELECT count(*) FROM messages WHERE dedupe_key = ?", (key,))
                visible_at_add.append(rows.fetchone()[0])
            real_add(key)

        journal.seen.add = add  # type: ignore[method-assign]
        journal.append_wait(inbound(1))
        assert journal.answer_of("SND|FAC|1") is not None
    assert visible_at_add == [0]  # added inside the transaction, before COMMIT


def test_without_remember_keys_every_lookup_asks_the_journal(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.append_wait(inbound(1))
        assert not journal.seen.complete
        assert journal.answer_of("SND|FAC|1") is not None
        assert journal.answer_of("SND|FAC|2") is None
