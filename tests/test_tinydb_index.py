"""The request-id index: latest segment wins, torn lines do no harm, it rebuilds from the segments."""
from __future__ import annotations

import os
import shutil

from tokenlimit_core.store import LedgerEvent
from tokenlimit_core.store.tinydb_files import FileMode
from tokenlimit_core.store.tinydb_history import History
from tokenlimit_core.store.tinydb_index import LedgerIndex, bucket_of, indexable


def test_latest_segment_wins_and_prefixes_do_not_match(tmp_path):
    index = LedgerIndex(str(tmp_path), FileMode())
    index.add(["abc", "abcd"], "ledger/2026-11/seg-00000001-j.jsonl")
    index.add(["abc"], "ledger/2026-12/seg-00000002-j.jsonl")
    assert index.lookup("abc") == "ledger/2026-12/seg-00000002-j.jsonl"
    assert index.lookup("abcd") == "ledger/2026-11/seg-00000001-j.jsonl"
    assert index.lookup("ab") is None and index.lookup("bc") is None


def test_a_torn_line_does_not_swallow_the_next(tmp_path):
    index = LedgerIndex(str(tmp_path), FileMode())
    index.add(["first"], "seg-a")
    with open(os.path.join(index.root, bucket_of("second")), "ab") as handle:
        handle.write(b"half-writ")  # a crash in the middle of an append
    index.add(["second"], "seg-b")
    assert index.lookup("second") == "seg-b"
    assert index.lookup("first") == "seg-a"


def test_ids_with_tabs_are_not_indexed():
    assert indexable("msg-1") and not indexable("a\tb") and not indexable("a\nb")


def test_bucket_files_are_private(tmp_path):
    index = LedgerIndex(str(tmp_path), FileMode())
    index.add(["x"], "seg")
    path = os.path.join(index.root, bucket_of("x"))
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_history_rebuilds_a_missing_index(tmp_path):
    history = History(str(tmp_path), FileMode())
    history.put_events([LedgerEvent(request_id=f"e{i}", ts=1_700_000_000, day="2023-11-14", user_id="u")
                        for i in range(5)], 0)
    history.put_events([LedgerEvent(request_id="e3", ts=1_700_000_000, day="2023-11-14", user_id="u",
                                    status="refunded")], 1)
    shutil.rmtree(history.index.root)
    assert history.find_event("e3")[0]["status"] == "refunded"
    assert history.find_event("e1")[0]["status"] == "pending"
    assert history.index.exists() and history.find_event("nope") is None
