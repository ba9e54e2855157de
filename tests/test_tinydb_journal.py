"""The journal: a torn last line (crash) is set aside and cut; damage anywhere else is refused loudly."""
from __future__ import annotations

import json
import os
import time

import pytest

from tokenlimit_core.store import SCHEMA_VERSION, StoreError
from tokenlimit_core.store.tinydb_files import FileMode
from tokenlimit_core.store.tinydb_journal import Journal, check_version, journal_generation, journal_name
from tokenlimit_core.store.tinydb_store import TinyDBStore


def test_names_round_trip():
    assert journal_generation(journal_name(42)) == 42
    assert journal_generation("state.json") is None and journal_generation("journal-x.jsonl") is None


def test_append_and_read_between_two_handles(tmp_path):
    writer = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    reader = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    writer.append({"op": "audit", "n": 1})
    writer.append({"op": "audit", "n": 2})
    assert [r["n"] for r in reader.read_new()] == [1, 2]
    assert reader.read_new() == []
    assert os.stat(writer.path).st_mode & 0o777 == 0o600


def test_torn_last_line_is_set_aside_not_applied(tmp_path):
    journal = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    journal.append({"op": "audit", "n": 1})
    with open(journal.path, "ab") as handle:
        handle.write(b'{"op":"audit","n":')  # a writer killed in the middle of its line
    reader = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    assert [r["n"] for r in reader.read_new()] == [1]
    assert open(journal.path, "rb").read().endswith(b"}\n")  # cut back to the last complete line
    kept = [n for n in os.listdir(tmp_path) if ".torn-" in n]
    assert len(kept) == 1 and open(tmp_path / kept[0], "rb").read() == b'{"op":"audit","n":'
    reader.append({"op": "audit", "n": 3})
    assert [r["n"] for r in Journal(str(tmp_path), 0, FileMode(), fsync=False).read_new()] == [1, 3]


def test_damaged_middle_line_names_file_and_line(tmp_path):
    journal = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    for n in range(3):
        journal.append({"op": "audit", "n": n})
    data = open(journal.path, "rb").read().replace(b'"n":1', b'"n":\x00#')
    open(journal.path, "wb").write(data)
    with pytest.raises(StoreError, match=r"journal-00000000\.jsonl is corrupt \(line 2 .*move it aside"):
        Journal(str(tmp_path), 0, FileMode(), fsync=False).read_new()
    assert open(journal.path, "rb").read() == data  # nothing rewritten


def test_shrunk_journal_is_damage_not_a_crash(tmp_path):
    journal = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    journal.append({"op": "audit", "n": 1})
    journal.read_new()
    os.truncate(journal.path, 3)
    with pytest.raises(StoreError, match="shrank"):
        journal.read_new()


def test_short_write_leaves_no_partial_line(tmp_path, monkeypatch):
    journal = Journal(str(tmp_path), 0, FileMode(), fsync=False)
    journal.append({"op": "audit", "n": 1})
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:5]))  # the disk filled up mid-line
    with pytest.raises(StoreError, match="disk is full"):
        journal.append({"op": "audit", "n": 2})
    monkeypatch.setattr(os, "write", real_write)
    assert open(journal.path, "rb").read() == b'{"op":"audit","n":1}\n'


def test_other_schema_version_says_which_and_what_to_do(tmp_path):
    with pytest.raises(StoreError, match=rf"schema version 99, this tokenlimit reads version {SCHEMA_VERSION}"):
        check_version({"schema_version": 99}, "x/meta.json", SCHEMA_VERSION)
    TinyDBStore(str(tmp_path / "s")).close()
    meta = tmp_path / "s" / "meta.json"
    doc = json.loads(meta.read_text())
    meta.write_text(json.dumps({**doc, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StoreError, match=rf"{meta}.*version {SCHEMA_VERSION + 1}.*migrate"):
        TinyDBStore(str(tmp_path / "s"))


def test_store_with_a_damaged_journal_refuses_and_keeps_the_file(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    for n in range(3):
        store.audit("admin", "note", {"n": n})
    store.close()
    path = tmp_path / "s" / journal_name(0)
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = lines[0] + b"garbage\n" + b"".join(lines[1:])
    path.write_bytes(damaged)
    before = {p: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    with pytest.raises(StoreError, match=r"line 2"):
        TinyDBStore(str(tmp_path / "s"))
    assert {p: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()} == before


def test_store_recovers_from_a_torn_tail_left_by_a_crash(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    store.audit("admin", "kept", {})
    store.close()
    with open(tmp_path / "s" / journal_name(0), "ab") as handle:
        handle.write(b'{"op":"audit","a":[1,"x","lost"')
    again = TinyDBStore(str(tmp_path / "s"))
    assert [a.action for a in again.audit_log()] == ["kept"]
    again.audit("admin", "after", {})
    again.close()
    assert [a.action for a in TinyDBStore(str(tmp_path / "s")).audit_log()] == ["after", "kept"]


def test_truncated_snapshot_is_refused_by_name(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    store.save_policy('{"roles": {}}', "admin")
    store.compact()
    store.close()
    state = tmp_path / "s" / "state.json"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=rf"{state} is corrupt .*not valid JSON.*backup"):
        TinyDBStore(str(tmp_path / "s"))
    assert state.read_bytes() == data[: len(data) // 2]


def test_lock_held_too_long_is_unavailable(tmp_path):
    from filelock import FileLock

    from tokenlimit_core.store import StoreUnavailable

    store = TinyDBStore(str(tmp_path / "s"), lock_timeout=0.2)
    with FileLock(str(tmp_path / "s" / "tokenlimit.lock")):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="tokenlimit.lock"):
            store.policy_revision()
        assert time.monotonic() - started < 5
    assert store.policy_revision() == 0
    store.close()
