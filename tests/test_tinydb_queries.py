"""History queries combine history files, closed journals and the hot state without counting anything twice."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from tokenlimit_core.store import BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, Settlement
from tokenlimit_core.store.tinydb_queries import closed_journals
from tokenlimit_core.store.tinydb_store import TinyDBStore

FAR = time.time() + 86400


def traffic(store, first, n, day="2026-11-03"):
    for i in range(first, first + n):
        key = CounterKey("user:u1:total", day)
        event = LedgerEvent(request_id=f"r{i}", ts=1_793_000_000 + i, day=day, user_id="u1", model="m", est_prompt=10)
        store.charge(ChargeRequest(f"r{i}", 10, (BudgetCharge(key, -1, FAR),), event))
        store.settle(f"r{i}", Settlement(3, 4, "openai"), time.time())


@pytest.fixture
def unmerged(tmp_path, monkeypatch):
    """A store whose compactions leave closed journals in place (no background merge)."""
    monkeypatch.setattr(TinyDBStore, "_start_merge", lambda self: None)
    store = TinyDBStore(str(tmp_path / "s"))
    yield store
    store.close()


def test_closed_journals_are_listed_oldest_first(tmp_path):
    for g in (3, 1, 7):
        (tmp_path / f"journal-{g:08d}.jsonl").write_text("")
    (tmp_path / "state.json").write_text("{}")
    assert [g for g, _p in closed_journals(str(tmp_path), 7)] == [1, 3]


def test_unmerged_closed_journals_and_hot_state_both_count(unmerged):
    traffic(unmerged, 0, 5)
    unmerged.compact()  # journal 0 closed, not merged
    traffic(unmerged, 5, 3)  # in the hot state
    assert len(closed_journals(unmerged.path, unmerged.info()["generation"])) == 1
    [row] = unmerged.daily_usage("2026-11-01", "2026-11-30")
    assert (row.tokens, row.requests) == (8 * 7, 8)
    [month] = unmerged.monthly_usage("2026-11", "2026-11")
    assert (month.tokens, month.requests) == (8 * 7, 8)
    assert len(unmerged.ledger(0, float("inf"))) == 8
    assert unmerged.get_event("r2").status == "settled"


def test_a_journal_merged_but_not_yet_deleted_counts_once(unmerged):
    traffic(unmerged, 0, 5)
    unmerged.compact()
    [(generation, path)] = closed_journals(unmerged.path, unmerged.info()["generation"])
    saved = path + ".copy"
    shutil.copy(path, saved)
    with unmerged._history_locked():
        unmerged.history.merge_journal(path, generation)
    os.replace(saved, path)  # a crash came after merging, before the journal was deleted
    [row] = unmerged.daily_usage("2026-11-01", "2026-11-30")
    assert (row.tokens, row.requests) == (35, 5)
    assert unmerged.monthly_usage("2026-11", "2026-11")[0].tokens == 35
    assert len(unmerged.ledger(0, float("inf"))) == 5
    with unmerged._history_locked():
        unmerged._merge_closed()
    assert not closed_journals(unmerged.path, unmerged.info()["generation"])
    assert unmerged.daily_usage("2026-11-01", "2026-11-30")[0].tokens == 35


def test_ledger_filters_by_time_and_user(unmerged):
    traffic(unmerged, 0, 4)
    unmerged.compact()
    traffic(unmerged, 4, 4)
    events = unmerged.ledger(1_793_000_002, 1_793_000_006)
    assert [e.request_id for e in events] == ["r2", "r3", "r4", "r5"]
    assert unmerged.ledger(0, float("inf"), user_id="nobody") == []
