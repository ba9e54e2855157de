"""End to end: the bundled Function inside a real Open WebUI 0.12.4, chatting as a user until refused.

Open WebUI comes from .ci/setup.d/openwebui.sh (its own venv under .cache/); a fake
OpenAI-compatible backend on 127.0.0.1 reports usage. The test installs
filters/tokenlimit_function.py through the admin API, sets a small limit and a
store in a temporary folder, then checks what the client sees and what the store holds.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest

from conftest import ROOT, missing_service
from e2e.fake_openai import FakeOpenAI, reply_for, usage_for
from e2e.openwebui_server import OpenWebUI, PipelinesServer, installed

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


def _ledger(url: str, user_id=None) -> list:
    from tokenlimit_core import open_store

    store = open_store(url)
    try:
        return sorted(store.ledger(0, time.time() + 60, user_id), key=lambda e: e.ts)
    finally:
        store.close()


def _wait_for(predicate, timeout: float = 20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    return predicate()


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


def test_webui_chat_is_paired_by_message_id_and_settled_with_its_usage(owui, tmp_path):
    """A web-UI-shaped request (chat_id + assistant message id, as the browser sends it)."""
    server, backend = owui["server"], owui["backend"]
    url = _store_url(tmp_path)
    server.json("POST", f"/api/v1/functions/id/{FUNCTION_ID}/valves/update",
                {"store_url": url, "daily_token_limits": json.dumps({"user": 100000})}, owui["admin"]["token"])
    token = owui["alice"]["token"]
    chat = server.json("POST", "/api/v1/chats/new", {"chat": {"title": "e2e", "models": ["gpt-4o-mini"],
                                                              "messages": [], "history": {"messages": {}}}}, token)
    for stream in (False, True):
        user_id, reply_id = str(uuid.uuid4()), str(uuid.uuid4())
        text = f"web ui question, stream={stream}"
        body = {"model": "gpt-4o-mini", "stream": stream, "chat_id": chat["id"], "id": reply_id, "parent_id": None,
                "messages": [{"role": "user", "content": text, "id": user_id}],
                "user_message": {"id": user_id, "parentId": None, "childrenIds": [], "role": "user",
                                 "content": text, "timestamp": int(time.time()), "models": ["gpt-4o-mini"]}}
        status, answer = server.request("POST", "/api/chat/completions", body, token)
        assert status == 200, answer
        event = _wait_for(lambda: next((e for e in _ledger(url) if e.request_id == reply_id
                                        and e.status == "settled"), None))
        assert event is not None, f"reply {reply_id} was not settled: {_ledger(url)}"
        request = next(r for r in reversed(backend.requests) if text in json.dumps(r.get("messages")))
        usage = usage_for(request, reply_for(request))
        assert event.source == "webui"
        assert (event.actual_prompt, event.actual_completion) == (usage["prompt_tokens"], usage["completion_tokens"])


def test_open_webuis_own_proxy_route_bypasses_every_filter(owui, tmp_path):
    """The README's warning holds: /openai/chat/completions skips filters (close it at the reverse proxy)."""
    server = owui["server"]
    url = _store_url(tmp_path)
    server.json("POST", f"/api/v1/functions/id/{FUNCTION_ID}/valves/update",
                {"store_url": url, "daily_token_limits": json.dumps({"user": 0})}, owui["admin"]["token"])
    token = owui["alice"]["token"]
    status, _ = _chat(server, token, False, "blocked here")
    assert status == 400
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "but not here"}], "stream": False}
    status, _ = server.request("POST", "/openai/chat/completions", body, token)
    assert status == 200
    assert [e.status for e in _ledger(url)] == ["denied"]


@pytest.fixture(scope="module")
def owui_with_pipelines(tmp_path_factory):
    """Open WebUI whose second OpenAI connection is a Pipelines server running the bundled Pipelines filter."""
    if not installed():
        missing_service("Open WebUI 0.12.4 in .cache/openwebui-venv (bash .ci/setup.d/openwebui.sh)")
    tmp = tmp_path_factory.mktemp("owui-pipes")
    folder = tmp / "pipelines"
    (folder / "tokenlimit_pipeline").mkdir(parents=True)
    (folder / "tokenlimit_pipeline.py").write_text((ROOT / "filters" / "tokenlimit_pipeline.py").read_text())
    store = f"tinydb://{tmp}/store"
    (folder / "tokenlimit_pipeline" / "valves.json").write_text(json.dumps(
        {"store_url": store, "daily_token_limits": json.dumps({"user": LIMIT, "admin": -1})}))
    started = time.time()
    pipes = PipelinesServer(folder)
    with FakeOpenAI() as backend:
        try:
            pipes.wait_ready()
            server = OpenWebUI(tmp / "data", backend.url, {
                "OPENAI_API_BASE_URLS": f"{backend.url};{pipes.url}", "OPENAI_API_KEYS": "x;pipelines-key"})
            try:
                server.wait_healthy()
                admin = server.json("POST", "/api/v1/auths/signup", {"name": "Admin", "email": "admin@example.com",
                                                                     "password": "Admin-pass-123"})
                alice = server.json("POST", "/api/v1/auths/add", {"name": "Alice", "email": "alice@example.com",
                                                                  "password": "Alice-pass-123", "role": "user"},
                                    admin["token"])
                yield {"server": server, "backend": backend, "admin": admin, "alice": alice, "store": store}
            finally:
                server.stop()
        finally:
            pipes.stop()
            print(f"\nOpen WebUI + Pipelines end-to-end run time: {time.time() - started:.1f} s")


def test_pipelines_filter_meters_and_its_refusal_reaches_users_only_as_internal_server_error(owui_with_pipelines):
    env = owui_with_pipelines
    server, backend, store = env["server"], env["backend"], env["store"]
    token = env["alice"]["token"]
    status, refusal, replies = None, None, 0
    for turn in range(40):
        status, body = _chat(server, token, turn % 2 == 1, f"Pipelines turn {turn}: tell me about quotas.")
        if status != 200:
            refusal = body
            break
        replies += 1
    assert status == 500 and replies > 0
    assert json.loads(refusal)["detail"] == "Internal Server Error"  # Open WebUI 0.12.4 drops the reason
    events = _ledger(store)
    assert events[-1].status == "denied"
    settled = [e for e in events if e.status == "settled"]
    assert len(settled) == replies and all(e.source == "pipeline" for e in settled)
    chats = [r for r in backend.requests if "Pipelines turn" in json.dumps(r.get("messages"))]
    for event, request in zip(settled, chats):
        if not request.get("stream"):
            usage = usage_for(request, reply_for(request))
            assert (event.actual_prompt, event.actual_completion) == (usage["prompt_tokens"],
                                                                      usage["completion_tokens"])
    for _ in range(2):  # an admin is never refused
        status, body = _chat(server, env["admin"]["token"], False, "admin question")
        assert status == 200, body


def test_groups_come_from_open_webui_and_map_to_tiers(owui, tmp_path):
    """The Function reads the user's Open WebUI groups; a group -> tier mapping in the store applies."""
    from tokenlimit_core import Policy, Tier, open_store

    server, admin = owui["server"], owui["admin"]["token"]
    group = server.json("POST", "/api/v1/groups/create", {"name": "school", "description": "e2e"}, admin)
    server.json("POST", f"/api/v1/groups/id/{group['id']}/users/add", {"user_ids": [owui["alice"]["id"]]}, admin)
    url = _store_url(tmp_path)
    store = open_store(url)
    try:  # the admin set this policy in the panel: the group's tier allows almost nothing
        store.save_policy(Policy(roles={"user": 100000, "admin": -1}, tiers={"tiny": Tier(daily_limit=5)},
                                 group_tiers={"school": "tiny"}).to_json(), "admin")
    finally:
        store.close()
    server.json("POST", f"/api/v1/functions/id/{FUNCTION_ID}/valves/update", {"store_url": url}, admin)
    status, body = _chat(server, owui["alice"]["token"], False, "a question from the school group")
    assert status == 400 and "5" in json.loads(body)["detail"]
    store = open_store(url)
    try:
        alice = next(u for u in store.users() if u.id == owui["alice"]["id"])
        assert alice.groups == ("school",)
    finally:
        store.close()
