"""Who may use the panel: the admin password or an Open WebUI admin account; read-only without either."""
from __future__ import annotations

import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Optional

import streamlit as st

PASSWORD_VAR = "TOKEN_LIMIT_ADMIN_PASSWORD"
OPENWEBUI_VAR = "TOKEN_LIMIT_OPENWEBUI_URL"
SESSION_KEY = "panel_user"
BASE_DELAY = 1.0  # seconds after the first failure, doubling up to MAX_DELAY
MAX_DELAY = 8.0

# Failures are counted per process, not per browser session, so opening a new tab does not reset the delay.
_failures = {"count": 0}
_failures_lock = threading.Lock()


@dataclass(frozen=True)
class Access:
    """The signed-in admin: the name the audit trail records, whether they may change things, and how."""

    actor: str
    can_write: bool
    via: str  # "password" | "openwebui" | "read-only"


class LoginError(Exception):
    """A refused sign-in; `code` selects the translated message, `fields` fill it."""

    def __init__(self, code: str, **fields):
        super().__init__(code)
        self.code = code
        self.fields = fields


def configured_password() -> Optional[str]:
    """The admin password from TOKEN_LIMIT_ADMIN_PASSWORD, else from Streamlit secrets, else None."""
    value = os.environ.get(PASSWORD_VAR, "")
    if value:
        return value
    try:
        secret = st.secrets.get(PASSWORD_VAR) or st.secrets.get("admin_password")
    except Exception:  # no secrets.toml: Streamlit raises rather than returning nothing
        return None
    return str(secret) if secret else None


def openwebui_url() -> str:
    """Open WebUI's base URL for admin sign-in (TOKEN_LIMIT_OPENWEBUI_URL), or ''."""
    return os.environ.get(OPENWEBUI_VAR, "").strip().rstrip("/")


def login_required() -> bool:
    """Whether any way to sign in is configured; without one the panel is read-only for everyone."""
    return bool(configured_password() or openwebui_url())


def current_access() -> Optional[Access]:
    """The session's access, or None when it must sign in first."""
    if not login_required():
        return Access("", False, "read-only")
    data = st.session_state.get(SESSION_KEY)
    return Access(**data) if data else None


def remember(access: Access) -> None:
    """Keep a successful sign-in for this browser session."""
    st.session_state[SESSION_KEY] = asdict(access)


def sign_out() -> None:
    """Forget this session's sign-in."""
    st.session_state.pop(SESSION_KEY, None)


def failure_delay(failures: int) -> float:
    """Seconds to wait after the n-th consecutive failure (0 before any)."""
    return 0.0 if failures <= 0 else min(BASE_DELAY * 2 ** (failures - 1), MAX_DELAY)


def _failed() -> None:
    with _failures_lock:
        _failures["count"] += 1
        delay = failure_delay(_failures["count"])
    time.sleep(delay)


def _succeeded() -> None:
    with _failures_lock:
        _failures["count"] = 0


def check_password(name: str, password: str) -> Access:
    """Sign in with a name and the admin password (constant-time compare, slower after each failure)."""
    name = (name or "").strip()
    if not name:
        raise LoginError("name_required")
    expected = configured_password()
    if not expected:
        raise LoginError("password_not_configured", var=PASSWORD_VAR)
    if not hmac.compare_digest((password or "").encode(), expected.encode()):
        _failed()
        raise LoginError("wrong_password")
    _succeeded()
    return Access(name, True, "password")


def openwebui_signin(email: str, password: str, base_url: Optional[str] = None, timeout: float = 10) -> Access:
    """Sign in through Open WebUI's POST /api/v1/auths/signin; only accounts with role admin get in."""
    base_url = (base_url or openwebui_url()).rstrip("/")
    if not base_url:
        raise LoginError("openwebui_not_configured", var=OPENWEBUI_VAR)
    request = urllib.request.Request(f"{base_url}/api/v1/auths/signin", method="POST",
                                     data=json.dumps({"email": email, "password": password}).encode(),
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            account = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 401, 403):
            _failed()
            raise LoginError("wrong_password") from exc
        raise LoginError("openwebui_error", url=base_url, error=f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoginError("openwebui_error", url=base_url, error=str(getattr(exc, "reason", exc))) from exc
    if not isinstance(account, dict) or account.get("role") != "admin":
        _failed()
        raise LoginError("not_admin", role=(account or {}).get("role", "?") if isinstance(account, dict) else "?")
    _succeeded()
    who = account.get("name") or email
    return Access(f"{who} <{account.get('email') or email}>", True, "openwebui")
