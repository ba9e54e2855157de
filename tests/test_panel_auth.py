"""Panel access: admin password (constant time, slower after failures), Open WebUI admins, read-only mode."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from panel_support import PASSWORD, all_text, app, demo_store, new_store_url, open_page, texts  # noqa: I001

from app_pages.common import auth


@pytest.fixture(autouse=True)
def fast_delays(monkeypatch):
    monkeypatch.setattr(auth, "BASE_DELAY", 0.01)
    auth._failures["count"] = 0


@pytest.fixture
def openwebui():
    """A loopback HTTP server answering POST /api/v1/auths/signin like Open WebUI does."""
    accounts = {"root@example.com": ("pw-admin", "admin", "Root"), "kim@example.com": ("pw-user", "user", "Kim")}
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            account = accounts.get(body.get("email"))
            if self.path != "/api/v1/auths/signin" or not account or account[0] != body.get("password"):
                self.send_response(400)
                self.end_headers()
                self.wfile.write(b'{"detail": "The email or password provided is incorrect."}')
                return
            reply = {"id": "u1", "email": body["email"], "name": account[2], "role": account[1],
                     "token": "jwt", "token_type": "Bearer"}
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(reply).encode())

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "seen": seen}
    server.shutdown()
    server.server_close()


def test_password_right_wrong_and_name_required(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VAR, PASSWORD)
    assert auth.check_password(" ann ", PASSWORD) == auth.Access("ann", True, "password")
    with pytest.raises(auth.LoginError) as wrong:
        auth.check_password("ann", PASSWORD + "x")
    assert wrong.value.code == "wrong_password"
    with pytest.raises(auth.LoginError) as nameless:
        auth.check_password("  ", PASSWORD)
    assert nameless.value.code == "name_required"


def test_failures_make_the_next_attempt_wait_longer(monkeypatch):
    monkeypatch.setenv(auth.PASSWORD_VAR, PASSWORD)
    waits = []
    monkeypatch.setattr(auth.time, "sleep", waits.append)
    for _ in range(5):
        with pytest.raises(auth.LoginError):
            auth.check_password("mallory", "guess")
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.16]
    assert auth.failure_delay(100) == auth.MAX_DELAY
    auth.check_password("ann", PASSWORD)
    assert auth._failures["count"] == 0


def test_openwebui_admin_gets_in_user_and_wrong_password_do_not(openwebui):
    access = auth.openwebui_signin("root@example.com", "pw-admin", openwebui["url"])
    assert access.can_write and access.via == "openwebui" and access.actor == "Root <root@example.com>"
    assert openwebui["seen"][0] == ("/api/v1/auths/signin", {"email": "root@example.com", "password": "pw-admin"})
    with pytest.raises(auth.LoginError) as user:
        auth.openwebui_signin("kim@example.com", "pw-user", openwebui["url"])
    assert user.value.code == "not_admin" and user.value.fields["role"] == "user"
    with pytest.raises(auth.LoginError) as wrong:
        auth.openwebui_signin("root@example.com", "nope", openwebui["url"])
    assert wrong.value.code == "wrong_password"


def test_openwebui_unreachable_names_the_url():
    with pytest.raises(auth.LoginError) as err:
        auth.openwebui_signin("root@example.com", "pw", "http://127.0.0.1:9", timeout=2)
    assert err.value.code == "openwebui_error" and err.value.fields["url"] == "http://127.0.0.1:9"


def test_login_page_refuses_a_wrong_password_and_admits_the_right_one(monkeypatch):
    at = app(monkeypatch, new_store_url(), signed_in=None).run()
    assert texts(at.title) == ["Sign in to tokenlimit"]
    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input("wrong")
    at.button(key="login_submit").click().run()
    assert "Wrong name or password" in " ".join(texts(at.error))
    assert "panel_user" not in at.session_state
    at.text_input(key="login_password").input(PASSWORD)
    at.button(key="login_submit").click().run()
    assert not at.exception
    assert texts(at.title) == ["Overview"]
    assert at.session_state["panel_user"]["actor"] == "ann"
    assert "Signed in as **ann**" in texts(at.sidebar.caption)


def test_sign_out_returns_to_the_login_page(monkeypatch):
    at = app(monkeypatch, new_store_url()).run()
    at.button(key="sign_out").click().run()
    assert texts(at.title) == ["Sign in to tokenlimit"]


def test_openwebui_sign_in_through_the_login_page(monkeypatch, openwebui):
    at = app(monkeypatch, new_store_url(), password=None, signed_in=None, openwebui=openwebui["url"]).run()
    at.text_input(key="login_email").input("kim@example.com")
    at.text_input(key="login_password").input("pw-user")
    at.button(key="login_submit").click().run()
    assert "only admins may use the panel" in " ".join(texts(at.error))
    at.text_input(key="login_email").input("root@example.com")
    at.text_input(key="login_password").input("pw-admin")
    at.button(key="login_submit").click().run()
    assert texts(at.title) == ["Overview"]


def test_without_a_password_the_panel_is_read_only_and_says_so(monkeypatch):
    url = new_store_url()
    demo_store(url)
    at = open_page(app(monkeypatch, url, password=None), "limits")
    assert "Read-only" in " ".join(texts(at.sidebar.info))
    assert all(editor.proto.disabled for editor in at.data_editor)
    assert "Read-only session" in all_text(at)
    at.switch_page("app_pages/users.py").run()
    assert at.button(key="us_grant").disabled and at.button(key="us_refund").disabled


def test_password_from_streamlit_secrets(monkeypatch):
    at = app(monkeypatch, new_store_url(), password=None, signed_in=None)
    at.secrets["TOKEN_LIMIT_ADMIN_PASSWORD"] = "from-secrets"
    at.run()
    assert texts(at.title) == ["Sign in to tokenlimit"]
    at.text_input(key="login_name").input("sam")
    at.text_input(key="login_password").input("from-secrets")
    at.button(key="login_submit").click().run()
    assert texts(at.title) == ["Overview"] and at.session_state["panel_user"]["actor"] == "sam"


def test_login_page_does_not_show_the_store(monkeypatch):
    at = app(monkeypatch, new_store_url(), signed_in=None).run()
    assert not at.sidebar.code and "Store in use" not in texts(at.sidebar.caption)
