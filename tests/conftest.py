"""Shared fixtures: stores of every backend, fixtures from ../shared, services the tests need.

`store_url` is parametrized over every backend in `STORE_BACKENDS`; the contract
suite (tests/test_store_contract.py) runs unchanged on each. When CI=true a
missing service (redis-server, chromium) is a failure, never a skip.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures" / "openwebui"
CALIBRATION = SHARED / "data" / "calibration" / "calibration.jsonl"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Every backend the contract suite runs against. A new backend adds its name here
# and a branch in `_make_store_url`; the suite itself needs no new code.
STORE_BACKENDS = ["memory", "tinydb", "redis"]


def missing_service(what: str):
    """Fail in CI, skip on a developer machine, when a service the test needs is absent."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI (CI=true) but is not available")
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port for the whole session; yields its base URL."""
    binary = shutil.which("redis-server")
    if not binary:
        missing_service("redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield {"url": f"redis://127.0.0.1:{port}", "port": port, "proc": proc}
    proc.terminate()
    proc.wait(5)


_redis_db_counter = iter(range(1, 10_000))


def _make_store_url(backend: str, request, tmp_path) -> str:
    if backend == "memory":
        return f"memory://{uuid.uuid4().hex}"
    if backend == "tinydb":
        return f"tinydb://{tmp_path}/store"
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        db = next(_redis_db_counter) % 16
        import redis

        redis.Redis(port=server["port"], db=db).flushdb()
        return f"{server['url']}/{db}"
    raise ValueError(backend)


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request, tmp_path) -> str:
    """A fresh, empty store URL of each backend."""
    return _make_store_url(request.param, request, tmp_path)


@pytest.fixture
def store(store_url):
    """A fresh, empty store of each backend."""
    from tokenlimit_core import open_store

    s = open_store(store_url)
    yield s
    s.close()


def load_fixture(name: str) -> dict:
    """One captured Open WebUI payload from ../shared/fixtures/openwebui."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def without_quicktok(monkeypatch):
    """As on a machine without quicktok-v1: its import fails and no tokenizer is loaded yet."""
    from tokenlimit_core.tokenizer import Tokenizer

    monkeypatch.setitem(sys.modules, "quicktok", None)
    monkeypatch.setattr(Tokenizer, "_loaded", {})
    monkeypatch.setattr(Tokenizer, "_classes", {})


def quicktok_or_skip():
    """The quicktok module; fails in CI (skips locally) when quicktok-v1 is not installed."""
    try:
        import quicktok
    except ImportError:
        missing_service("quicktok-v1 (pip install quicktok-v1)")
    return quicktok
