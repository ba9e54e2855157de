"""File safety: permissions (0600 / 0660 + group), atomic writes, read-only and full disks named clearly."""
from __future__ import annotations

import errno
import grp
import os
import stat
import subprocess
import uuid

import pytest

from tokenlimit_core.store import StoreError, open_store
from tokenlimit_core.store.tinydb_files import FileMode, os_error, read_json, write_json
from tokenlimit_core.store.tinydb_store import TinyDBStore


def modes(folder):
    """{relative path: permission bits} of everything under a folder."""
    out = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(base, name)
            out[os.path.relpath(path, folder)] = stat.S_IMODE(os.stat(path).st_mode)
    return out


def usable_group() -> grp.struct_group:
    """A group this process may chgrp files to, other than its primary group."""
    if os.geteuid() == 0:
        candidates = [g for g in grp.getgrall() if g.gr_gid != os.getegid()]
    else:
        candidates = [grp.getgrgid(g) for g in os.getgroups() if g != os.getegid()]
    if not candidates:
        pytest.skip("no second group to test a shared group with")
    return candidates[0]


def fill(store):
    store.save_policy('{"roles": {}}', "admin")
    store.audit("admin", "x", {})
    store.compact()


def test_owner_only_by_default(tmp_path):
    folder = tmp_path / "new" / "store"  # parents are created too
    store = TinyDBStore(str(folder), group="")
    fill(store)
    store.close()
    found = modes(folder)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert found and all(m == (0o700 if (folder / p).is_dir() else 0o600) for p, m in found.items()), found


def test_shared_group_gets_0660_and_the_group(tmp_path):
    group = usable_group()
    store = open_store(f"tinydb://{tmp_path}/s?group={group.gr_name}")
    fill(store)
    store.close()
    for rel, mode in modes(tmp_path / "s").items():
        path = tmp_path / "s" / rel
        assert os.stat(path).st_gid == group.gr_gid, rel
        assert mode == (0o2770 if path.is_dir() else 0o660), (rel, oct(mode))


def test_group_from_environment(tmp_path, monkeypatch):
    group = usable_group()
    monkeypatch.setenv("TOKEN_LIMIT_FILE_GROUP", group.gr_name)
    store = TinyDBStore(str(tmp_path / "s"))
    assert store.info()["group"] == group.gr_name
    store.close()
    assert os.stat(tmp_path / "s" / "state.json").st_gid == group.gr_gid


def test_unknown_group_is_named(tmp_path):
    with pytest.raises(StoreError, match="no-such-group-x.*TOKEN_LIMIT_FILE_GROUP"):
        TinyDBStore(str(tmp_path / "s"), group="no-such-group-x")


def test_atomic_write_replaces_whole_file(tmp_path):
    path = str(tmp_path / "doc.json")
    write_json(path, {"a": 1}, FileMode())
    write_json(path, {"a": 2}, FileMode())
    assert read_json(path) == {"a": 2}
    assert os.listdir(tmp_path) == ["doc.json"]  # no temp file left behind


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "doc.json")
    write_json(path, {"a": 1}, FileMode())

    def no_space(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreError, match=rf"{path}.*disk is full"):
        write_json(path, {"a": 2}, FileMode())
    monkeypatch.undo()
    assert read_json(path) == {"a": 1} and os.listdir(tmp_path) == ["doc.json"]


@pytest.mark.parametrize("code,words", [(errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full"),
                                        (errno.EACCES, "permission denied")])
def test_os_errors_name_the_path_and_the_remedy(code, words):
    message = str(os_error(OSError(code, os.strerror(code)), "/data/tokenlimit/journal-00000001.jsonl"))
    assert "/data/tokenlimit/journal-00000001.jsonl" in message and words in message


def test_existing_foreign_directory_is_not_taken_over(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and has no meta.json"):
        TinyDBStore(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.fixture
def small_mount(tmp_path):
    """A real 1 MB tmpfs (needs root and mount); yields its path."""
    point = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-errno tests cover the messages")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_full_disk_is_a_clear_error_and_the_store_still_opens(small_mount):
    store = TinyDBStore(str(small_mount / "s"), journal_mb=64)
    with pytest.raises(StoreError, match="disk is full"):
        for n in range(100_000):
            store.audit("admin", "fill", {"pad": "x" * 500, "n": n})
    written = len(store.audit_log(1_000_000))
    store.close()
    assert written > 100
    assert len(TinyDBStore(str(small_mount / "s")).audit_log(1_000_000)) == written  # what was acknowledged is there


def test_read_only_disk_is_a_clear_error(small_mount):
    store = TinyDBStore(str(small_mount / "s"))
    store.save_policy("{}", "admin")
    store.close()  # Linux refuses to remount read-only while a file is open for writing
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    with pytest.raises(StoreError, match=rf"{small_mount}/s/.*read-only"):
        TinyDBStore(str(small_mount / "s"))  # opening one
    with pytest.raises(StoreError, match=rf"{small_mount}/new.*read-only"):
        TinyDBStore(str(small_mount / "new"))  # creating one
    subprocess.run(["mount", "-o", "remount,rw", str(small_mount)], check=True)
    assert TinyDBStore(str(small_mount / "s")).load_policy().revision == 1  # nothing lost
