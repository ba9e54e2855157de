"""The append-only journal of the tinydb store: one JSON record per line, one file per generation.

`journal-00000042.jsonl` holds every operation since snapshot 42 (`state.json` says which
generation is current). A record is appended with a single `os.write` of the whole line,
under the store's exclusive file lock, so a line either ends with a newline (complete) or is
the remnant of a write a crash interrupted. Only the last line can be such a remnant: it is
kept aside in `journal-….jsonl.torn-OFFSET` and cut off, because the operation it held was
never acknowledged. Any other unreadable line means the file was damaged: that is an error
naming the file and line, and the file is left as it is.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

from .base import StoreError
from .tinydb_files import FileMode, corrupt, os_error, sync_data


def journal_name(generation: int) -> str:
    """The file name of a generation's journal."""
    return f"journal-{generation:08d}.jsonl"


def journal_generation(name: str) -> Optional[int]:
    """The generation a journal file name stands for, or None for other names."""
    if name.startswith("journal-") and name.endswith(".jsonl"):
        digits = name[len("journal-"):-len(".jsonl")]
        if digits.isdigit():
            return int(digits)
    return None


def encode(record: dict[str, Any]) -> bytes:
    """One journal line."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def parse_lines(path: str, data: bytes, first_line: int, required: str = "op") -> list[dict[str, Any]]:
    """The records in complete lines of `data`; a damaged line is a StoreError naming file and line."""
    records = []
    for number, line in enumerate(data.splitlines(), start=first_line):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or required not in record:
            raise corrupt(path, f"line {number} is not a complete record")
        records.append(record)
    return records


class Journal:
    """One open journal file: read what others appended, append our own records."""

    def __init__(self, folder: str, generation: int, mode: FileMode, fsync: bool):
        self.generation = generation
        self.path = os.path.join(folder, journal_name(generation))
        self.fsync = fsync
        self.offset = 0  # bytes applied so far
        self.lines = 0  # complete lines applied so far
        try:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
                mode.apply_fd(self.fd, self.path)
            except FileExistsError:
                self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise os_error(exc, self.path, "opening") from exc

    def read_new(self, locked: bool = True) -> list[dict[str, Any]]:
        """Records appended since the last call. Holding the lock, a torn last line is set aside and cut."""
        try:
            size = os.fstat(self.fd).st_size
        except OSError as exc:
            raise os_error(exc, self.path, "reading") from exc
        if size < self.offset:
            raise corrupt(self.path, f"it shrank from {self.offset} to {size} bytes while in use")
        if size == self.offset:
            return []
        try:
            data = os.pread(self.fd, size - self.offset, self.offset)
        except OSError as exc:
            raise os_error(exc, self.path, "reading") from exc
        end = data.rfind(b"\n") + 1
        complete, tail = data[:end], data[end:]
        records = parse_lines(self.path, complete, self.lines + 1)
        self.offset += end
        self.lines += len(records)
        if tail and locked:
            self._set_aside(tail)
        return records

    def _set_aside(self, tail: bytes) -> None:
        keep = f"{self.path}.torn-{self.offset}"
        try:
            with open(keep, "wb") as handle:
                handle.write(tail)
            os.chmod(keep, 0o600)
            os.ftruncate(self.fd, self.offset)
        except OSError as exc:
            raise os_error(exc, self.path, "cutting the torn last line of") from exc

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (caller holds the lock and has read everything before)."""
        line = encode(record)
        try:
            written = os.write(self.fd, line)
            if written != len(line):
                os.ftruncate(self.fd, self.offset)
                raise OSError(28, "short write (disk full?)")
            if self.fsync:
                sync_data(self.fd)
        except OSError as exc:
            try:
                os.ftruncate(self.fd, self.offset)
            except OSError:
                pass
            raise os_error(exc, self.path, "appending to") from exc
        self.offset += len(line)
        self.lines += 1

    def size(self) -> int:
        """Bytes in the journal so far."""
        return self.offset

    def close(self) -> None:
        """Close the file."""
        try:
            os.close(self.fd)
        except OSError:
            pass


def read_closed(path: str, required: str = "op") -> list[dict[str, Any]]:
    """All complete records of a journal no process appends to any more (for history merging)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise os_error(exc, path, "reading") from exc
    end = data.rfind(b"\n") + 1
    if end < len(data) and required == "ev":
        raise corrupt(path, "its last line is incomplete")
    return parse_lines(path, data[:end], 1, required)


def check_version(doc: Any, path: str, supported: int) -> None:
    """Refuse a file of another schema version, saying which and what to do."""
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != supported:
        raise StoreError(f"tinydb store: {path} has schema version {version}, this tokenlimit reads version "
                         f"{supported}. Use a tokenlimit release that reads version {version}, or convert the "
                         f"store with `python -m tokenlimit_core migrate` from that release; nothing was changed.")
