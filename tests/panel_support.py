"""Helpers for the panel's AppTest tests: a signed-in app on a named memory store, and element lookups."""
from __future__ import annotations

import pathlib
import sys
import uuid

from streamlit.testing.v1 import AppTest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # app_pages/ is not an installed package: tests import it from the checkout
    sys.path.insert(0, str(ROOT))

from tokenlimit_core import open_store

APP = str(ROOT / "app.py")
PASSWORD = "correct horse"


def new_store_url() -> str:
    """A fresh memory store name (shared with the app, which runs in this process)."""
    return f"memory://panel-{uuid.uuid4().hex}"


def demo_store(url: str, users: int = 8, days: int = 3):
    """A store filled by the real demo generator (engine checks and settles)."""
    from tokenlimit_core.demo import generate

    store = open_store(url)
    generate(store, users=users, days=days, seed=1)
    return store


def app(monkeypatch, url: str, *, password: str | None = PASSWORD, signed_in: str | None = "ann",
        openwebui: str | None = None) -> AppTest:
    """The panel against `url`; signed in as `signed_in` (None: at the login page)."""
    monkeypatch.setenv("TOKEN_LIMIT_STORE_URL", url)
    for var in ("TOKEN_LIMIT_ADMIN_PASSWORD", "TOKEN_LIMIT_OPENWEBUI_URL", "TOKEN_LIMIT_DAILY_LIMITS",
                "TOKEN_LIMIT_MODEL_LIMITS", "TOKEN_LIMIT_USER_SPECIFIC", "TOKEN_LIMIT_RESET_HOUR",
                "TOKEN_LIMIT_TARGET_MODELS", "TOKEN_LIMIT_WARNING_THRESHOLD", "TOKEN_LIMIT_TIMEZONE",
                "TOKEN_LIMIT_WINDOW", "TOKEN_LIMIT_SHADOW_MODE", "TOKEN_LIMIT_LANGUAGE", "TOKEN_LIMIT_DATA_PATH"):
        monkeypatch.delenv(var, raising=False)
    if password:
        monkeypatch.setenv("TOKEN_LIMIT_ADMIN_PASSWORD", password)
    if openwebui:
        monkeypatch.setenv("TOKEN_LIMIT_OPENWEBUI_URL", openwebui)
    at = AppTest.from_file(APP, default_timeout=60)
    if signed_in and (password or openwebui):
        at.session_state["panel_user"] = {"actor": signed_in, "can_write": True, "via": "password"}
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    """Run the app, switch to app_pages/<page>.py and run it; fails on any exception shown."""
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    """The values of a list of text elements (titles, captions, errors...)."""
    return [e.value for e in elements]


def all_text(at: AppTest) -> str:
    """Every markdown-like text on the page, joined (for 'is this said somewhere' checks)."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def plotly_charts(at: AppTest) -> list:
    """The plotly charts on the page (AppTest has no dedicated accessor for them)."""
    return list(at.get("plotly_chart"))
