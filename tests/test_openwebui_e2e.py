"""End to end: the bundled Function inside a real Open WebUI 0.12.4, chatting as a user until refused.

Open WebUI comes from .ci/setup.d/openwebui.sh (its own venv under .cache/); a fake
OpenAI-compatible backend on 127.0.0.1 reports usage. The test installs
filters/tokenlimit_function.py through the admin API, sets a small limit and a
store in a temporary folder, then checks what the client sees and what the store holds.
"""
from __future__ import annotations

import json
import time

import pytest

from conftest import ROOT, missing_service
from e2e.fake_openai import FakeOpenAI, reply_for, usage_for
from e2e.openwebui_server import OpenWebUI, installed

FUNCTION_ID = "tokenlimit"
LIMIT = 600


def _store_url(tmp_path) -> str:
    # Open WebUI and this test are two processes: they share a tinydb store in a temporary folder.
    return f"tinydb://{tmp_path}/store"


@pytest.fixture(scope="module")
def owui(tmp_path_factory):
    """A running Open WebUI with the Function installed; yields (server, backend, tokens, store folder)."""
    if not installed():
        missing_service("Open WebUI 0.12.4 in .cache/openwebui-venv (bash .ci/setup.d/openwebui.sh)")
    tmp = tmp_path_factory.mktemp("owui")
    started = time.time()
    with FakeOpenAI() as backend:
        server = OpenWebUI(tmp / "data", backend.url)
        try:
            server.wait_healthy()
            admin = server.json("POST", "/api/v1/auths/signup",
                                {"name": "Admin", "email": "admin@example.com", "password": "Admin-pass-123"})
            alice = server.json("POST", "/api/v1/auths/add", {"name": "Alice", "email": "alice@example.com",
                                                              "password": "Alice-pass-123", "role": "user"},
                                admin["token"])
            content = (ROOT / "filters" / "tokenlimit_function.py").read_text()
            server.json("POST", "/api/v1/functions/create",
                        {"id": FUNCTION_ID, "name": "Token Limit", "content": content,
                         "meta": {"description": "token quotas"}}, admin["token"])
            server.json("POST", f"/api/v1/functions/id/{FUNCTION_ID}/toggle", None, admin["token"])
            server.json("POST", f"/api/v1/functions/id/{FUNCTION_ID}/toggle/global", None, admin["token"])
            yield {"server": server, "backend": backend, "admin": admin, "alice": alice, "tmp": tmp,
                   "started": started}
        finally:
            server.stop()
            print(f"\nOpen WebUI end-to-end run time: {time.time() - started:.1f} s")


def _chat(server, token, stream: bool, text: str):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}
    return server.request("POST", "/api/chat/completions", body, token)


def test_user_is_refused_with_the_reason_and_every_reply_is_metered(owui, tmp_path):
    from tokenlimit_core import open_store

    server, backend = owui["server"], owui["backend"]
    url = _store_url(tmp_path)
    server.json("POST", f"/api/v1/functions/id/{FUNCTION_ID}/valves/update",
                {"store_url": url, "daily_token_limits": json.dumps({"user": LIMIT, "admin": -1}),
                 "language": "en"}, owui["admin"]["token"])
    replies, refusal = [], None
    for turn in range(40):
        stream = turn % 2 == 1
        text = f"Turn {turn}: please tell me something about token quotas and how they reset."
        sent = len(backend.requests)
        status, body = _chat(server, owui["alice"]["token"], stream, text)
        if status == 400:
            refusal = json.loads(body)["detail"]
            assert len(backend.requests) == sent, "a refused request must not reach the provider"
            break
        assert status == 200, body
        request = backend.requests[-1]
        if stream:
            assert request.get("stream_options", {}).get("include_usage") is True
        replies.append((stream, usage_for(request, reply_for(request))))
    assert refusal is not None, "the user was never refused"
    assert "Token limit reached" in refusal or "too large" in refusal
    assert f"{LIMIT:,}" in refusal
    assert {s for s, _ in replies} == {False, True}

    store = open_store(url)
    try:
        users = {u.email: u for u in store.users()}
        alice = users["alice@example.com"]
        events = sorted((e for e in store.ledger(0, time.time() + 60, alice.id)), key=lambda e: e.ts)
        settled = [e for e in events if e.status == "settled"]
        assert len(settled) == len(replies)
        for event, (stream, usage) in zip(settled, replies):
            assert (event.actual_prompt, event.actual_completion) == \
                (usage["prompt_tokens"], usage["completion_tokens"]), (stream, event)
            assert event.actual_source != "estimate"
            assert event.source == "api"
        assert events[-1].status == "denied"
    finally:
        store.close()

    for _ in range(3):  # the admin is never refused, even now
        status, body = _chat(server, owui["admin"]["token"], False, "admin question " * 200)
        assert status == 200, body
