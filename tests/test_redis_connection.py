"""Redis store options from the URL, the client's settings, and errors that never show a password."""
from __future__ import annotations

import sys

import pytest
import redis

from tokenlimit_core.store import StoreError, StoreUnavailable, open_store
from tokenlimit_core.store.redis_connection import (SCRIPT_NAMES, ErrorMapper, RedisOptions, connect,
                                                    display_url, load_scripts, split_options)


def test_store_options_come_out_of_the_url_and_the_rest_goes_to_redis_py():
    url, options = split_options("redis://:pw@host:6380/3?prefix=tl:&stream_maxlen=50&socket_timeout=0.5"
                                 "&ssl_cert_reqs=none", {})
    assert options == RedisOptions(prefix="tl:", stream_maxlen=50, socket_timeout=0.5)
    assert url == "redis://:pw@host:6380/3?ssl_cert_reqs=none"


def test_keyword_options_win_over_the_url():
    _, options = split_options("redis://h/0?ledger_days=30", {"ledger_days": 7, "counter_grace": 60})
    assert (options.ledger_days, options.counter_grace) == (7, 60)


@pytest.mark.parametrize("query, name", [("stream_maxlen=many", "stream_maxlen"), ("ledger_days=-1", "ledger_days"),
                                         ("socket_timeout=0", "socket_timeout"), ("prefix=", "prefix")])
def test_bad_option_names_the_option_and_hides_the_password(query, name):
    with pytest.raises(StoreError) as err:
        split_options(f"redis://:hunter2@h/0?{query}", {})
    assert name in str(err.value) and "hunter2" not in str(err.value)


def test_unknown_keyword_option_is_refused():
    with pytest.raises(StoreError, match="unknown Redis store option.*strem_maxlen"):
        split_options("redis://h/0", {"strem_maxlen": 5})


def test_client_fails_fast_no_backoff_and_short_timeouts():
    client = connect("redis://127.0.0.1:1/0", RedisOptions(socket_timeout=0.25, connect_timeout=0.5))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25 and kwargs["socket_connect_timeout"] == 0.5
    retry = kwargs["retry"]
    assert retry._retries == 1 and redis.exceptions.TimeoutError not in retry._supported_errors
    client.close()


def test_bad_url_names_the_url_without_password():
    with pytest.raises(StoreError) as err:
        connect("redis://:hunter2@h:notaport/0", RedisOptions())
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def test_errors_are_mapped_and_scrubbed():
    errors = ErrorMapper("redis://user:hunter2@db.example:6379/0")
    with pytest.raises(StoreUnavailable) as err:
        with errors.mapped("charge a request"):
            raise redis.exceptions.ConnectionError("lost hunter2 somewhere")
    assert "hunter2" not in str(err.value) and "charge a request" in str(err.value)
    assert "redis://user:***@db.example:6379/0" in str(err.value)
    with pytest.raises(StoreUnavailable):
        with errors.mapped("x"):
            raise redis.exceptions.TimeoutError("slow")
    with pytest.raises(StoreError) as err:
        with errors.mapped("x"):
            raise redis.exceptions.AuthenticationError("invalid username-password pair")
    assert not isinstance(err.value, StoreUnavailable) and "password in TOKEN_LIMIT_STORE_URL" in str(err.value)
    with pytest.raises(StoreError) as err:
        with errors.mapped("x"):
            raise redis.exceptions.ResponseError("ERR something")
    assert not isinstance(err.value, StoreUnavailable)


def test_every_script_ships_with_the_package():
    client = redis.Redis()  # registering a script does not connect
    scripts = load_scripts(client)
    assert set(scripts) == set(SCRIPT_NAMES)
    assert all("local function judge" in s.script for s in scripts.values())


def test_missing_redis_package_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("tokenlimit_core.store.redis_")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(StoreError, match=r"pip install 'tokenlimit\[redis\]'"):
        open_store("redis://127.0.0.1:1/0")


def test_passwords_in_the_query_are_hidden_too():
    url = "rediss://h:6380/0?password=hunter2&ssl_password=keypw&prefix=tl:"
    shown = display_url(url)
    assert "hunter2" not in shown and "keypw" not in shown and "prefix=tl:" in shown
    errors = ErrorMapper(url)
    assert errors.scrub("bad hunter2 and keypw") == "bad *** and ***"
    assert display_url("redis://u:pw@h/0") == "redis://u:***@h/0"
