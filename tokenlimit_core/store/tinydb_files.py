"""File safety for the tinydb store: permissions, atomic replace, clear errors.

Every file the store writes goes through here, so that
- files are 0600 (0660 with a shared group, chgrp'd to it) and directories 0700 (2770);
- whole-file writes are atomic (temp file, fsync, `os.replace`, fsync of the directory), so a
  crash leaves either the old or the new file, never half of one;
- an `OSError` becomes a `StoreError` that names the path and what to do (read-only file
  system, full disk, permissions);
- a file that does not parse is reported as corrupt, naming it, and is never overwritten.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from tinydb.storages import Storage

from .base import StoreError

try:
    import grp
except ImportError:  # not on Windows: shared groups are a POSIX feature
    grp = None

# fdatasync skips metadata the journal does not need; macOS lacks it.
sync_data = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True)
class FileMode:
    """Who may read the store's files: the owner only, or also one shared group."""

    group: str = ""
    gid: Optional[int] = None

    @classmethod
    def for_group(cls, group: str) -> "FileMode":
        """The mode for a group name ('' = owner only); an unknown group is an error naming it."""
        group = (group or "").strip()
        if not group:
            return cls()
        if grp is None:
            raise StoreError("file group (TOKEN_LIMIT_FILE_GROUP or ?group=) needs a POSIX system; leave it empty")
        try:
            gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        except KeyError:
            raise StoreError(f"file group {group!r} (TOKEN_LIMIT_FILE_GROUP or ?group=) does not exist on this "
                             f"machine; create it (groupadd {group}) or leave the setting empty") from None
        return cls(group, gid)

    @property
    def file_mode(self) -> int:
        return 0o660 if self.gid is not None else 0o600

    @property
    def dir_mode(self) -> int:
        return 0o2770 if self.gid is not None else 0o700

    def apply_fd(self, fd: int, path: str) -> None:
        """Set mode (and group) on a file this process just created."""
        try:
            os.fchmod(fd, self.file_mode)
            if self.gid is not None:
                os.fchown(fd, -1, self.gid)
        except OSError as exc:
            raise os_error(exc, path, "setting permissions on") from exc


def os_error(exc: OSError, path: str, doing: str = "writing") -> StoreError:
    """A StoreError for an OSError on `path`, saying what to do about it."""
    code = exc.errno
    if code == errno.EROFS:
        hint = "the file system is read-only; remount it read-write or point TOKEN_LIMIT_STORE_URL elsewhere"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        hint = "the disk is full (or over quota); free space, then retry — nothing was recorded for this operation"
    elif code in (errno.EACCES, errno.EPERM):
        hint = ("permission denied; run as the user that owns the store, or configure a shared group "
                "(TOKEN_LIMIT_FILE_GROUP / ?group=) and add both users to it")
    else:
        hint = exc.strerror or str(exc)
    return StoreError(f"tinydb store: {doing} {path} failed: {hint} [errno {code}]")


def corrupt(path: str, what: str) -> StoreError:
    """The error for a file that exists but cannot be read as the store wrote it."""
    return StoreError(f"tinydb store: {path} is corrupt ({what}). Nothing was changed. Restore this file from "
                      f"a backup, or move it aside (mv {path} {path}.bad) to accept losing what it held, "
                      f"then start again.")


def make_dir(path: str, mode: FileMode) -> None:
    """Create a directory (and parents) with the store's mode, if missing."""
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode.dir_mode)
        if mode.gid is not None:
            os.chown(path, -1, mode.gid)
    except OSError as exc:
        raise os_error(exc, path, "creating directory") from exc


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, mode: FileMode) -> None:
    """Replace `path` with `data` in one step: temp file, fsync, rename."""
    folder = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise os_error(exc, path) from exc
    try:
        mode.apply_fd(fd, path)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        _remove_quietly(tmp)
        raise os_error(exc, path) from exc
    except BaseException:
        if fd >= 0:
            os.close(fd)
        _remove_quietly(tmp)
        raise
    fsync_dir(folder)


def write_json(path: str, value: Any, mode: FileMode) -> None:
    """Atomically write a JSON document."""
    write_atomic(path, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(), mode)


def read_json(path: str, default: Any = None) -> Any:
    """A JSON document written by `write_json`; `default` when missing; StoreError when corrupt."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise os_error(exc, path, "reading") from exc
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        size = len(raw)
        raise corrupt(path, f"not valid JSON: {exc} (file is {size} bytes)") from None


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def remove_stale_temps(folder: str) -> None:
    """Delete temp files left by writes a crash interrupted (call while holding the store lock)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.endswith(".tmp"):
            _remove_quietly(os.path.join(folder, name))


class AtomicJSONStorage(Storage):
    """A TinyDB storage that writes atomically with the store's permissions and refuses corrupt files.

    TinyDB's own JSONStorage truncates and rewrites in place (a crash leaves half a file) and
    turns nothing into an error; history files use this one instead.
    """

    def __init__(self, path: str, mode: FileMode = FileMode(), read_only: bool = False):
        super().__init__()
        self.path = path
        self.mode = mode
        self.read_only = read_only

    def read(self) -> Optional[dict[str, dict[str, Any]]]:
        data = read_json(self.path)
        if data is not None and not isinstance(data, dict):
            raise corrupt(self.path, "expected a TinyDB document (a JSON object of tables)")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise StoreError(f"tinydb store: {self.path} was opened read-only")
        write_json(self.path, data, self.mode)
