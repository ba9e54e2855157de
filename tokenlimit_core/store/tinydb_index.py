"""Where a request's ledger event lives in history, found in one small file.

`get_event` of an id that is not in the hot state (an outlet whose inlet was not metered, a
refund from the panel) must not scan a year of ledger segments. The index spreads
"request_id<TAB>segment" lines over 4,096 bucket files (`history/index/abc.txt`, by hash of the
id), appended whenever a segment is written; a lookup reads one bucket (a few hundred lines at
a year of traffic). The index only points into segments, which stay the truth: a line repeated
after a crash, or pointing at a segment retention removed, does no harm, and `rebuild` recreates
it from the segments.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from typing import Iterable, Optional

from .tinydb_files import FileMode, make_dir, os_error


def bucket_of(request_id: str) -> str:
    """The bucket file name of a request id."""
    return hashlib.blake2b(request_id.encode(), digest_size=4).hexdigest()[:3] + ".txt"


def indexable(request_id: str) -> bool:
    """Ids with a tab or newline cannot be index keys (they are found by scanning instead)."""
    return "\t" not in request_id and "\n" not in request_id


class LedgerIndex:
    """The bucket files under `history/index/`."""

    def __init__(self, history_root: str, mode: FileMode):
        self.root = os.path.join(history_root, "index")
        self.history_root = history_root
        self.mode = mode

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def add(self, request_ids: Iterable[str], segment: str) -> None:
        """Record that these requests' latest events are in `segment` (a path relative to history/)."""
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for rid in request_ids:
            if indexable(rid):
                by_bucket[bucket_of(rid)].append(f"{rid}\t{segment}\n")
        if not by_bucket:
            return
        make_dir(self.root, self.mode)
        for name, lines in by_bucket.items():
            self._append(os.path.join(self.root, name), "".join(lines).encode())

    def _append(self, path: str, data: bytes) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise os_error(exc, path) from exc
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                self.mode.apply_fd(fd, path)
            elif os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crash cut the last line: end it so ours start on a line of their own
            os.write(fd, data)
        except OSError as exc:
            raise os_error(exc, path) from exc
        finally:
            os.close(fd)

    def lookup(self, request_id: str) -> Optional[str]:
        """The segment (relative to history/) holding the latest event of a request, if indexed."""
        path = os.path.join(self.root, bucket_of(request_id))
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error(exc, path, "reading") from exc
        key = request_id.encode() + b"\t"
        found = None
        start = 0
        while True:
            at = data.find(key, start)
            if at < 0:
                break
            end = data.find(b"\n", at)
            if at == 0 or data[at - 1:at] == b"\n":
                found = data[at + len(key): end if end >= 0 else len(data)].decode()
            start = at + 1
        return found

    def rebuild(self, segments: list[str], read_ids) -> None:
        """Recreate the index from ledger segments (oldest first); `read_ids(path)` lists a segment's ids."""
        shutil.rmtree(self.root, ignore_errors=True)
        make_dir(self.root, self.mode)
        for path in segments:
            self.add(read_ids(path), os.path.relpath(path, self.history_root))
