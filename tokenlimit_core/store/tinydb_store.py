"""`tinydb:///path/to/dir` — the embedded default store, shared by several processes on one machine.

Layout of the directory (see docs/tinydb-store.md):
- `meta.json`: format and schema version;
- `tokenlimit.lock`: the exclusive lock every change (and every catch-up) holds; `history.lock`: held
  while history files are merged or read;
- `state.json`: snapshot of the hot state (open-window counters, pending requests, users, policy,
  recent audit) as of the start of generation G, written atomically;
- `journal-G.jsonl`: every operation since that snapshot, one JSON line each (tinydb_journal);
- `history/`: daily and monthly rollups (TinyDB documents) and the ledger by month (tinydb_history).

Each process keeps the hot state in memory as a `StoreState` (the reference semantics of
store/memory.py). Under the lock it first replays what other processes appended since its last
offset, then applies its operation and appends one line. So an operation costs the same with a day
or a year of history. When the journal passes `journal_mb`, the process holding the lock compacts:
it writes a new snapshot (generation G+1) and leaves journal G closed; a background thread then
folds closed journals into `history/` and deletes them. A crash at any point leaves either the old
or the new snapshot, and journals are only deleted after their content is in history.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import filelock

from .base import SCHEMA_VERSION, StoreError, StoreUnavailable
from .memory import StoreState
from . import tinydb_ops as ops
from . import tinydb_queries as queries
from .tinydb_files import (FileMode, corrupt, make_dir, os_error, read_json, remove_stale_temps, sync_data,
                           write_json)
from .tinydb_history import History
from .tinydb_api import TinyDBOperations
from .tinydb_journal import Journal, check_version

log = logging.getLogger("tokenlimit.store.tinydb")
META_FORMAT = "tokenlimit-tinydb"
SYNC_MODES = ("always", "second", "never")  # fsync each append / a background fsync each second / leave it to the OS
OWN_FILES = {"meta.json", "state.json", "tokenlimit.lock", "history.lock", "history"}


class TinyDBStore(TinyDBOperations):
    """The embedded store: a directory shared by filter workers, panel, notebooks and CLI."""

    def __init__(self, path: str, *, group: Optional[str] = None, sync: str = "second",
                 retention_days: Optional[float] = None, journal_mb: float = 8.0, lock_timeout: float = 10.0,
                 url: Optional[str] = None):
        self.path = os.path.abspath(path)
        self.url = url or f"tinydb://{self.path}"
        group = os.environ.get("TOKEN_LIMIT_FILE_GROUP", "") if group is None else group
        self.mode = FileMode.for_group(group)
        if sync not in SYNC_MODES:
            raise StoreError(f"store URL option sync={sync!r}: use one of {', '.join(SYNC_MODES)}")
        self.sync = sync
        self.retention_days = retention_days
        self.journal_bytes = int(journal_mb * 1024 * 1024)
        self.lock_timeout = lock_timeout
        self.history = History(self.path, self.mode)
        self._state_path = os.path.join(self.path, "state.json")
        self._tlock = threading.RLock()
        self._hlock_thread = threading.RLock()
        self._journal: Optional[Journal] = None
        self._state = StoreState()
        self._stamp: Any = None
        self._closed = False
        self._merger: Optional[threading.Thread] = None
        self._merge_guard = threading.Lock()
        self._merge_wanted = False
        self._merge_error: Optional[str] = None
        make_dir(self.path, self.mode)
        self._refuse_foreign()  # before creating lock files in someone else's directory
        self._flock = self._file_lock("tokenlimit.lock")
        self._hlock = self._file_lock("history.lock")
        with self._locked(init=True):
            pass
        if queries.closed_journals(self.path, self._journal.generation):
            self._start_merge()
        self._flusher: Optional[threading.Thread] = None
        if self.sync == "second":
            self._flusher = threading.Thread(target=self._flush_every_second, name="tokenlimit-fsync", daemon=True)
            self._flusher.start()

    @classmethod
    def from_url(cls, url: str, **options) -> "TinyDBStore":
        """Open `tinydb:///dir?group=NAME&retention_days=N&sync=second&journal_mb=8&lock_timeout=10`."""
        parts = urlsplit(url)
        path = unquote(url.split("://", 1)[1].split("?", 1)[0])
        if not path:
            raise StoreError(f"store URL {url!r} (TOKEN_LIMIT_STORE_URL) names no directory; use tinydb:///path/to/dir")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"group", "retention_days", "sync", "journal_mb", "lock_timeout"}
        unknown = set(query) - known
        if unknown:
            raise StoreError(f"store URL option(s) {sorted(unknown)} unknown; the tinydb store takes {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for name, convert in (("retention_days", float), ("journal_mb", float), ("lock_timeout", float)):
            if name in query:
                try:
                    kwargs[name] = convert(query[name])
                except ValueError:
                    raise StoreError(f"store URL option {name}={query[name]!r} is not a number") from None
                if kwargs[name] <= 0:
                    raise StoreError(f"store URL option {name}={query[name]!r} must be greater than 0")
        for name in ("group", "sync"):
            if name in query:
                kwargs[name] = query[name]
        kwargs.update(options)
        return cls(path, url=url, **kwargs)

    # -- locking, catch-up, compaction
    def _file_lock(self, name: str) -> filelock.FileLock:
        return filelock.FileLock(os.path.join(self.path, name), timeout=self.lock_timeout, mode=self.mode.file_mode,
                                 thread_local=False, poll_interval=0.0005)

    @contextlib.contextmanager
    def _locked(self, init: bool = False):
        if self._closed:
            raise StoreError(f"tinydb store {self.path} is closed")
        with self._tlock:
            try:
                self._flock.acquire()
            except filelock.Timeout:
                raise StoreUnavailable(f"tinydb store: lock {self._flock.lock_file} is held by another process for "
                                       f"more than {self.lock_timeout:g} s") from None
            except OSError as exc:
                raise os_error(exc, self._flock.lock_file, "locking") from exc
            try:
                if init:
                    self._init_files()
                self._catch_up()
                yield self._state
            finally:
                self._flock.release()

    def _refuse_foreign(self) -> None:
        if os.path.exists(os.path.join(self.path, "meta.json")):
            return
        foreign = [n for n in os.listdir(self.path)
                   if n not in OWN_FILES and not n.startswith(("journal-", "state.json.", "meta.json."))]
        if foreign:
            raise StoreError(f"tinydb store: {self.path} is not empty and has no meta.json (found "
                             f"{', '.join(sorted(foreign)[:5])}); if it is a tokenlimit store, restore its "
                             f"meta.json from a backup, else point TOKEN_LIMIT_STORE_URL at an empty directory")

    def _init_files(self) -> None:
        meta_path = os.path.join(self.path, "meta.json")
        meta = read_json(meta_path)
        if meta is None:
            self._refuse_foreign()
            write_json(self._state_path, ops.snapshot_doc(StoreState(), 0, time.time())[0], self.mode)
            write_json(meta_path, {"format": META_FORMAT, "schema_version": SCHEMA_VERSION,
                                   "created_at": time.time()}, self.mode)
            return
        if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
            raise corrupt(meta_path, "not a tokenlimit tinydb store's meta.json")
        check_version(meta, meta_path, SCHEMA_VERSION)
        remove_stale_temps(self.path)

    def _catch_up(self) -> None:
        try:
            st = os.stat(self._state_path)
        except FileNotFoundError:
            raise corrupt(self._state_path, "it is missing although meta.json exists") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            doc = read_json(self._state_path)
            if not isinstance(doc, dict) or doc.get("format") != ops.SNAPSHOT_FORMAT:
                raise corrupt(self._state_path, "not a tokenlimit state snapshot")
            check_version(doc, self._state_path, SCHEMA_VERSION)
            try:
                self._load(ops.state_from_doc(doc), int(doc["generation"]))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise corrupt(self._state_path, f"malformed snapshot ({exc!r})") from None
            self._stamp = stamp
        journal = self._journal
        records = journal.read_new()
        first = journal.lines - len(records) + 1
        for number, record in enumerate(records, start=first):
            try:
                ops.apply(self._state, record)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self._stamp = None
                raise corrupt(journal.path, f"line {number} cannot be applied ({exc!r})") from None

    def _load(self, state: StoreState, generation: int) -> None:
        if self._journal is not None:
            self._journal.close()
        self._journal = None
        self._journal = Journal(self.path, generation, self.mode, self.sync == "always")
        self._state = state

    def _append(self, record: dict[str, Any]) -> None:
        try:
            self._journal.append(record)
        except StoreError:
            self._stamp = None  # memory ran ahead of the file: reload from disk on the next call
            raise
        if self._journal.size() >= self.journal_bytes:
            self._compact()

    def _compact(self) -> None:
        """Start a new generation: snapshot the hot state; the old journal waits for merging."""
        generation = self._journal.generation + 1
        now = time.time()
        doc, old_audit = ops.snapshot_doc(self._state, generation, now)
        try:
            if old_audit:
                self.history.put_audit(old_audit, generation)
            write_json(self._state_path, doc, self.mode)
            st = os.stat(self._state_path)
        except (StoreError, OSError) as exc:  # the operation itself is recorded; compaction retries next time
            log.error("compaction of %s failed, will retry: %s", self.path, exc)
            return
        self._load(ops.state_from_doc(doc), generation)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        self._start_merge()

    def compact(self) -> dict[str, float]:
        """Snapshot now and merge closed journals into history (normally automatic); returns seconds taken."""
        started = time.perf_counter()
        with self._locked():
            if self._journal.size() > 0:
                self._compact()
        snapshot = time.perf_counter()
        self.wait_merged()
        return {"snapshot_s": snapshot - started, "merge_s": time.perf_counter() - snapshot}

    def _flush_every_second(self) -> None:
        """fsync the journal once a second when it grew, off the request path (sync=second)."""
        flushed = (-1, -1)
        while not self._closed:
            time.sleep(1.0)
            with self._tlock:
                if self._closed or self._journal is None:
                    return
                mark = (self._journal.generation, self._journal.size())
                if mark == flushed:
                    continue
                fd = os.dup(self._journal.fd)
            try:
                sync_data(fd)
                flushed = mark
            except OSError as exc:
                log.error("fsync of the journal in %s failed: %s", self.path, exc)
            finally:
                os.close(fd)

    # -- history merging (background)
    @contextlib.contextmanager
    def _history_locked(self):
        with self._hlock_thread:
            try:
                self._hlock.acquire(timeout=max(self.lock_timeout, 60.0))
            except filelock.Timeout:
                raise StoreUnavailable(f"tinydb store: {self._hlock.lock_file} held for too long") from None
            try:
                yield
            finally:
                self._hlock.release()

    def _start_merge(self) -> None:
        with self._merge_guard:
            self._merge_wanted = True
            if self._merger is None:
                self._merger = threading.Thread(target=self._merge_quietly, name="tokenlimit-merge", daemon=True)
                self._merger.start()

    def _merge_quietly(self) -> None:
        while True:
            with self._merge_guard:
                if not self._merge_wanted:  # a compaction during the last merge asks for another round
                    self._merger = None
                    return
                self._merge_wanted = False
            try:
                with self._history_locked():
                    self._merge_closed()
                self._merge_error = None
            except Exception as exc:  # a background thread must report, never die silently
                self._merge_error = str(exc) if isinstance(exc, StoreError) else f"merging failed: {exc!r}"
                log.error("merging the journal of %s into history failed: %s", self.path, exc)

    def _merge_closed(self) -> None:
        """Fold every closed journal into history (caller holds the history lock)."""
        with self._locked():
            current = self._journal.generation
        for generation, path in queries.closed_journals(self.path, current):
            self.history.merge_journal(path, generation)
        if self.retention_days:
            self.history.drop_ledger_before(time.time() - self.retention_days * 86400)

    def wait_merged(self) -> None:
        """Block until background merging is done."""
        while True:
            with self._merge_guard:
                merger = self._merger
            if merger is None:
                return
            merger.join()

    def _hot_view(self, extract):
        """(generation, closed journals, extract(hot state)) for history queries; caller holds the history lock."""
        with self._locked() as state:
            generation = self._journal.generation
            return generation, queries.closed_journals(self.path, generation), extract(state)
