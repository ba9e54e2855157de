"""Redis servers this file starts itself: outages (stop, restart, pause), passwords and TLS.

The session's shared server is never stopped; each test here runs its own redis-server on a
free loopback port, with an append-only file so that a restart keeps the data.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis
from conftest import free_port, missing_service

from tokenlimit_core import Engine, Policy, UserInfo
from tokenlimit_core.store import StoreError, StoreUnavailable, open_store

PASSWORD = "s3cret-Pw_42"
BODY = {"messages": [{"role": "user", "content": "hello there " * 40}]}
USAGE = {"usage": {"prompt_tokens": 40, "completion_tokens": 2}}


class PrivateRedis:
    """One redis-server process on 127.0.0.1 that a test may stop, restart and pause."""

    def __init__(self, folder, *extra: str, password: str = ""):
        self.binary = shutil.which("redis-server") or missing_service("redis-server")
        self.port, self.folder, self.password = free_port(), folder, password
        self.extra = list(extra) + (["--requirepass", password] if password else [])
        self.proc = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self, ping: bool = True) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if not ping:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return self
                client = redis.Redis(port=self.port, password=self.password or None, socket_timeout=0.5)
                client.ping()
                client.close()
                return self
            except (OSError, redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"private redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def private_redis(tmp_path):
    servers = []

    def make(*extra, password=""):
        folder = tmp_path / f"redis{len(servers)}"
        folder.mkdir()
        servers.append(PrivateRedis(folder, *extra, password=password))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def engine_on(url: str, mode: str) -> Engine:
    return Engine(open_store(url + "/0?socket_timeout=0.3&connect_timeout=0.3"),
                  seed=Policy(roles={"user": 1_000_000}), failure_mode=mode)


def store_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tokenlimit.engine"]


def test_outage_applies_the_failure_mode_logs_once_and_recovers_without_double_counting(private_redis, caplog):
    server = private_redis().start()
    allow, block = engine_on(server.url, "allow"), engine_on(server.url, "block")
    alice, bob = UserInfo("alice", role="user"), UserInfo("bob", role="user")
    first = [allow.check(alice, "m", BODY, request_id=f"a{i}") for i in range(10)]
    assert all(d.status == "allowed" for d in first)
    for i in range(5):
        assert allow.settle(f"a{i}", USAGE).status == "settled"
    assert block.check(bob, "m", BODY, request_id="b0").allowed
    estimate = first[0].estimate.total

    caplog.set_level(logging.INFO, logger="tokenlimit.engine")
    server.stop()
    retried = [allow.check(alice, "m", BODY, request_id=f"a{i}") for i in range(10)]
    fresh = [allow.check(alice, "m", BODY, request_id=f"x{i}") for i in range(40)]
    refused = [block.check(bob, "m", BODY, request_id=f"y{i}") for i in range(40)]
    assert all(allow.settle(f"a{i}", USAGE) is None for i in range(5, 10))
    assert all(d.allowed and d.status == "unmetered" and d.reason == "unavailable" for d in retried + fresh)
    assert all(not d.allowed and d.status == "unavailable" for d in refused)
    assert block.refusal_text(refused[0], "en") and block.refusal_text(refused[0], "zh")
    lines = store_lines(caplog)
    assert len(lines) == 2, lines  # one line per incident per filter process, not one per request
    assert all("unavailable" in line and "127.0.0.1" in line for line in lines)

    caplog.clear()
    server.start()
    back = allow.check(alice, "m", BODY, request_id="z0")
    assert back.status == "allowed" and back.allowed
    assert block.check(bob, "m", BODY, request_id="y0").allowed
    again = [allow.check(alice, "m", BODY, request_id=f"a{i}") for i in range(10)]  # retries of charged ids
    assert all(d.allowed for d in again)
    for i in range(5, 10):
        assert allow.settle(f"a{i}", USAGE).status == "settled"
        assert allow.settle(f"a{i}", USAGE) is None
    lines = store_lines(caplog)
    assert len(lines) == 2 and all("reachable again" in line for line in lines), lines

    [total] = [s for s in allow.statuses(alice, "m") if s.budget.kind == "total"]
    assert (total.counter.used, total.counter.pending) == (10 * 42, estimate)  # a0-a9 settled once, z0 pending
    events = {e.request_id for e in allow.store.ledger(0, 2e9)}
    assert events == {f"a{i}" for i in range(10)} | {"b0", "z0", "y0"}


def test_a_paused_server_times_out_quickly_and_a_late_charge_counts_once(private_redis, caplog):
    server = private_redis().start()
    engine = engine_on(server.url, "allow")
    alice = UserInfo("alice", role="user")
    assert engine.check(alice, "m", BODY, request_id="p0").status == "allowed"
    caplog.set_level(logging.INFO, logger="tokenlimit.engine")
    server.pause()
    started = time.monotonic()
    during = engine.check(alice, "m", BODY, request_id="p1")
    waited = time.monotonic() - started
    server.resume()
    assert during.status == "unmetered" and during.reason == "unavailable"
    assert waited < 5  # bounded by socket_timeout, not hung (the figure itself is in bench/)
    after = engine.check(alice, "m", BODY, request_id="p1")  # the client retries the same request
    assert after.allowed
    [total] = [s for s in engine.statuses(alice, "m") if s.budget.kind == "total"]
    events = sorted(engine.store.ledger(0, 2e9), key=lambda e: e.request_id)
    assert [e.request_id for e in events] == ["p0", "p1"]
    assert total.counter.pending == sum(e.charged for e in events)


def test_password_never_shows_in_url_info_errors_or_logs(private_redis, caplog):
    server = private_redis(password=PASSWORD).start()
    store = open_store(server.url + "/0")
    assert PASSWORD not in store.url and "***" in store.url
    assert PASSWORD not in repr(store.info()) and store.info()["healthy"]
    engine = Engine(store, seed=Policy(roles={"user": 1000}))
    assert engine.check(UserInfo("alice"), "m", BODY, request_id="r1").allowed

    with pytest.raises(StoreError) as err:
        open_store(server.url.replace(PASSWORD, "wrong-" + PASSWORD) + "/0")
    assert "password" in str(err.value) and PASSWORD not in str(err.value)
    assert not isinstance(err.value, StoreUnavailable)

    caplog.set_level(logging.DEBUG)
    server.stop()
    with pytest.raises(StoreUnavailable) as err:
        store.policy_revision()
    assert PASSWORD not in str(err.value)
    assert engine.check(UserInfo("alice"), "m", BODY, request_id="r2").reason == "unavailable"
    info = store.info()
    assert info["healthy"] is False and PASSWORD not in repr(info)
    assert caplog.records and PASSWORD not in caplog.text


ACL_RULES = ["~tokenlimit:*", "+@read", "+@write", "+@scripting", "+@connection", "-@dangerous", "+info|server"]


def test_a_redis_user_limited_to_the_store_prefix_is_enough(private_redis):
    server = private_redis(password=PASSWORD).start()
    admin = redis.Redis(port=server.port, password=PASSWORD)
    admin.execute_command("ACL", "SETUSER", "tokenlimit", "on", ">" + PASSWORD, *ACL_RULES)
    url = f"redis://tokenlimit:{PASSWORD}@127.0.0.1:{server.port}/0"
    store = open_store(url)
    assert store.url.startswith("redis://tokenlimit:***@")
    engine = Engine(store, seed=Policy(roles={"user": 1000}))
    assert engine.check(UserInfo("alice"), "m", BODY, request_id="r1").allowed
    assert engine.settle("r1", USAGE).status == "settled"
    assert store.refund("r1", "admin").status == "refunded"
    assert store.info()["healthy"] and store.daily_usage("2000-01-01", "2100-01-01")
    with pytest.raises(StoreError) as err:  # keys outside the allowed prefix are refused, with a clear hint
        open_store(url + "?prefix=other:").policy_revision()
    assert "ACL" in str(err.value) and PASSWORD not in str(err.value)
    admin.close()


def test_rediss_with_password_over_tls(private_redis, tmp_path):
    openssl = shutil.which("openssl") or missing_service("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = private_redis("--port", "0", "--tls-port", "PORT", "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), "--tls-auth-clients", "no", password=PASSWORD)
    server.extra[server.extra.index("PORT")] = str(server.port)
    server.start(ping=False)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0?ssl_ca_certs={cert}"
    store = open_store(url)
    assert store.url.startswith("rediss://:***@") and PASSWORD not in repr(store.info())
    engine = Engine(store, seed=Policy(roles={"user": 1000}))
    assert engine.check(UserInfo("alice"), "m", BODY, request_id="t1").allowed
    assert engine.settle("t1", USAGE).status == "settled"
    untrusted = open_store(url.split("?")[0] + f"?ssl_ca_certs={os.devnull}")  # a CA that did not sign it
    with pytest.raises(StoreUnavailable) as err:
        untrusted.policy_revision()
    assert PASSWORD not in str(err.value)
