"""A corrupt, unreachable or misconfigured store shows the store's own error on every page, never a traceback."""
from __future__ import annotations

import pytest

from panel_support import app, demo_store, new_store_url, texts  # noqa: I001

from app_pages.common import store_access
from tokenlimit_core import Policy, open_store

PAGES = ["overview", "users", "explain", "limits", "estimation", "export", "settings"]


def errors_on_every_page(at) -> list[str]:
    at.run()
    shown = []
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        shown.append(" ".join(texts(at.error)))
    return shown


def test_corrupt_tinydb_file_is_named_and_left_alone(monkeypatch, tmp_path):
    folder = tmp_path / "store"
    store = open_store(f"tinydb://{folder}")
    store.save_policy(Policy().to_json(), "test")
    store.close()
    (folder / "state.json").write_text("{garbage")
    at = app(monkeypatch, f"tinydb://{folder}")
    for shown in errors_on_every_page(at):
        assert "The store cannot be used" in shown and f"{folder}/state.json is corrupt" in shown
    assert (folder / "state.json").read_text() == "{garbage"


def test_unknown_scheme_and_bad_settings_name_the_variable(monkeypatch):
    at = app(monkeypatch, "bogus://somewhere")
    assert all("TOKEN_LIMIT_STORE_URL" in shown and "unknown scheme" in shown for shown in errors_on_every_page(at))
    at = app(monkeypatch, new_store_url())
    monkeypatch.setenv("TOKEN_LIMIT_RESET_HOUR", "99")
    assert all("TOKEN_LIMIT_RESET_HOUR" in shown for shown in errors_on_every_page(at))


def test_unreachable_redis_shows_the_stores_error(monkeypatch):
    pytest.importorskip("redis")
    at = app(monkeypatch, "redis://127.0.0.1:1/0")
    for shown in errors_on_every_page(at):
        assert "The store cannot be used" in shown and "127.0.0.1:1" in shown


def test_invalid_stored_policy_is_reported_not_replaced(monkeypatch):
    url = new_store_url()
    store = open_store(url)
    store.save_policy('{"roles": {"user": -9}}', "someone")
    at = app(monkeypatch, url)
    assert all("policy stored in" in shown and "revision 1" in shown for shown in errors_on_every_page(at))
    assert store.load_policy().policy_json == '{"roles": {"user": -9}}'


def test_reconnect_after_the_store_is_fixed(monkeypatch, tmp_path):
    folder = tmp_path / "store"
    open_store(f"tinydb://{folder}").close()
    (folder / "state.json").write_text("{garbage")
    at = app(monkeypatch, f"tinydb://{folder}")
    at.run()
    assert any("is corrupt" in e for e in texts(at.error))
    (folder / "state.json").unlink()
    (folder / "meta.json").unlink()
    for journal in folder.glob("journal-*"):
        journal.unlink()
    at.button(key="reconnect").click().run()
    assert not at.error and not at.exception


def test_shown_url_hides_passwords(monkeypatch):
    monkeypatch.setenv("TOKEN_LIMIT_STORE_URL", "redis://:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in store_access.shown_url() and "***" in store_access.shown_url()


def test_a_healthy_store_shows_no_error(monkeypatch):
    url = new_store_url()
    demo_store(url, users=2, days=1)
    at = app(monkeypatch, url).run()
    assert not at.error
