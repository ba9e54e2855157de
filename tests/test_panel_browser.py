"""The panel in a real browser: `streamlit run app.py` against a demo tinydb store, driven by headless Chromium.

Signs in, opens every page through the sidebar, checks that no exception or error box is shown,
and saves one screenshot per page under test-output/panel/.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, free_port, missing_service
from panel_support import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-output" / "panel"
PAGES = [("Overview", "overview"), ("Users", "users"), ("Explain", "explain"), ("Limits", "limits"),
         ("Estimation", "estimation"), ("Export", "export"), ("Settings", "settings")]
TITLES = {"overview": "Overview", "users": "Users", "explain": "Explain a limit", "limits": "Limits",
          "estimation": "Estimation", "export": "Export", "settings": "Settings"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    """`streamlit run app.py` on a free loopback port, against a tinydb store filled with demo traffic."""
    if not os.path.exists(CHROMIUM):
        missing_service("chromium (/usr/bin/chromium)")
    pytest.importorskip("playwright.sync_api")
    from tokenlimit_core import open_store
    from tokenlimit_core.demo import generate

    folder = tmp_path_factory.mktemp("panel") / "store"
    store = open_store(f"tinydb://{folder}")
    generate(store, users=30, days=14, seed=3)
    store.close()
    port = free_port()
    env = {**os.environ, "TOKEN_LIMIT_STORE_URL": f"tinydb://{folder}", "TOKEN_LIMIT_ADMIN_PASSWORD": PASSWORD,
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    for var in ("TOKEN_LIMIT_OPENWEBUI_URL", "TOKEN_LIMIT_DAILY_LIMITS", "TOKEN_LIMIT_LANGUAGE"):
        env.pop(var, None)
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    else:
        proc.kill()
        log.seek(0)
        pytest.fail("streamlit did not start:\n" + log.read()[-3000:])
    if proc.poll() is not None:
        log.seek(0)
        pytest.fail("streamlit exited:\n" + log.read()[-3000:])
    yield {"url": base, "log": log}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser_page(panel):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def settle(page) -> None:
    """Wait until the script run is over and charts are drawn."""
    page.wait_for_selector('[data-testid="stStatusWidget"] >> text=Running', state="detached", timeout=60_000)
    page.wait_for_timeout(1200)


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main area, so the viewport grows to fit it first."""
    height = page.evaluate("Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
                           "[data-testid=stSidebarContent]')].map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def problems(page) -> list[str]:
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


def test_sign_in_and_every_page(panel, browser_page):
    page = browser_page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(panel["url"])
    page.get_by_role("heading", name="Sign in to tokenlimit").wait_for()
    screenshot(page, "login")
    page.get_by_role("textbox", name="Your name").fill("browser-admin")
    page.get_by_role("textbox", name="Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong name or password").wait_for()
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()
    for label, slug in PAGES:
        page.locator('[data-testid="stSidebarNavLink"]', has_text=label).first.click()
        page.get_by_role("heading", name=TITLES[slug]).first.wait_for()
        settle(page)
        screenshot(page, slug)
        assert problems(page) == [], (slug, problems(page))
        if slug == "overview":
            page.locator('[data-testid="stPlotlyChart"]').nth(3).wait_for()
    assert all((SHOTS / f"{slug}.png").stat().st_size > 10_000 for _, slug in PAGES)


def test_language_switch_in_the_browser(panel, browser_page):
    page = browser_page
    page.get_by_test_id("stSidebar").get_by_text("简体中文").click()
    page.get_by_role("heading", name="设置").or_(page.get_by_role("heading", name="总览")).first.wait_for()
    settle(page)
    assert problems(page) == []
    screenshot(page, "settings-zh")
    page.locator('[data-testid="stSidebarNavLink"]', has_text="总览").first.click()
    page.get_by_role("heading", name="总览").first.wait_for()
    settle(page)
    assert problems(page) == []
    screenshot(page, "overview-zh")
    page.get_by_test_id("stSidebar").get_by_text("English").click()
    page.get_by_role("heading", name="Overview").first.wait_for()


def test_server_log_has_no_traceback(panel):
    panel["log"].flush()
    panel["log"].seek(0)
    assert "Traceback" not in panel["log"].read()


