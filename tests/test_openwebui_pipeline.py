"""The Pipelines filter: on the captured payloads in-process, and served the way the Pipelines server does."""
from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid

import pytest

from conftest import ROOT, load_fixture, missing_service
from tokenlimit_core.engine import QuotaExceeded
from tokenlimit_core.openwebui import Pipeline

INLET = "pipeline_inlet_request.json"
OUTLET = "pipeline_outlet_request.json"


def request(name: str) -> dict:
    return copy.deepcopy(load_fixture(name)["request"]["body"])


def make_pipeline(**valves) -> Pipeline:
    pipe = Pipeline()
    valves.setdefault("store_url", f"memory://{uuid.uuid4().hex}")
    pipe.valves = pipe.Valves(**valves)
    asyncio.run(pipe.on_valves_updated())
    return pipe


def store_of(pipe: Pipeline):
    return pipe._engines.get(pipe.valves).store


def run_inlet(pipe, name=INLET, **changes):
    r = request(name)
    r["body"].update(changes)
    return asyncio.run(pipe.inlet(r["body"], r["user"]))


def run_outlet(pipe, name=OUTLET):
    r = request(name)
    return asyncio.run(pipe.outlet(r["body"], r["user"]))


def events(pipe):
    return sorted(store_of(pipe).ledger(0, time.time() + 1), key=lambda e: e.ts)


def test_required_pipelines_valves_and_type():
    pipe = Pipeline()
    assert pipe.type == "filter" and pipe.valves.pipelines == ["*"] and pipe.valves.priority == 0
    assert {"daily_token_limits", "store_url", "failure_mode", "language", "usage_line"} <= set(Pipeline.Valves.model_fields)


def test_environment_is_read_into_valve_defaults(monkeypatch):
    monkeypatch.setenv("TOKEN_LIMIT_MODEL_LIMITS", '{"gpt-4*": 500}')
    monkeypatch.setenv("TOKEN_LIMIT_LANGUAGE", "zh")
    pipe = Pipeline()
    # /valves/update replaces every valve; omitted ones return to the (environment) defaults
    updated = pipe.valves.__class__(**{"priority": 3})
    assert updated.model_token_limits == '{"gpt-4*": 500}' and updated.language == "zh" and updated.priority == 3


def test_api_flow_settles_the_oldest_pending_request_of_the_user_and_model():
    pipe = make_pipeline(daily_token_limits='{"user": 5000}')
    run_inlet(pipe)
    run_inlet(pipe)
    first, second = events(pipe)
    body = run_outlet(pipe)  # its body.id ("msg_…") pairs with nothing: the oldest pending one settles
    assert store_of(pipe).get_event(first.request_id).status == "settled"
    assert store_of(pipe).get_event(second.request_id).status == "pending"
    settled = store_of(pipe).get_event(first.request_id)
    assert (settled.actual_prompt, settled.actual_completion, settled.source) == (15, 25, "pipeline")
    assert body["usage_info"]["current_request"] == 40 and body["usage_info"]["daily_limit"] == 5000
    run_outlet(pipe)
    run_outlet(pipe)  # nothing left pending: never settles twice
    assert [e.status for e in events(pipe)] == ["settled", "settled"]
    assert sum(e.tokens for e in events(pipe)) == 80


def test_streamed_api_reply_without_usage_settles_with_an_estimate():
    pipe = make_pipeline()
    run_inlet(pipe, stream=True)
    run_outlet(pipe, "pipeline_outlet_request_stream.json")
    event = events(pipe)[0]
    assert event.status == "settled" and event.actual_source == "estimate"


def test_webui_flow_pairs_by_message_id_and_tasks_are_metered_at_their_estimate():
    pipe = make_pipeline(daily_token_limits='{"user": 5000}')
    calls = load_fixture("pipeline_background_tasks.json")["pipeline_calls"]
    for call in calls:
        r = copy.deepcopy(call["request"])
        hook = pipe.inlet if call["path"].endswith("/inlet") else pipe.outlet
        asyncio.run(hook(r["body"], r["user"]))
    by_task = {e.task: e for e in events(pipe)}
    assert set(by_task) == {None, "title_generation", "tags_generation", "follow_up_generation"}
    chat = by_task[None]
    assert chat.request_id == "1fd6e459-d98d-4712-8de4-5361a83639e9" and chat.source == "webui"
    assert chat.status == "settled" and chat.actual_source == "openwebui"
    for task in ("title_generation", "tags_generation", "follow_up_generation"):
        assert by_task[task].status == "settled" and by_task[task].actual_source == "estimate"


def test_tasks_pass_over_the_limit_unless_refuse_tasks():
    calls = [c for c in load_fixture("pipeline_background_tasks.json")["pipeline_calls"] if c["metadata_task"]]
    lenient = make_pipeline(daily_token_limits='{"user": 5}')
    r = copy.deepcopy(calls[0]["request"])
    asyncio.run(lenient.inlet(r["body"], r["user"]))
    strict = make_pipeline(daily_token_limits='{"user": 5}', refuse_tasks=True)
    r = copy.deepcopy(calls[0]["request"])
    with pytest.raises(QuotaExceeded):
        asyncio.run(strict.inlet(r["body"], r["user"]))


def test_refusal_raises_with_the_reason():
    pipe = make_pipeline(daily_token_limits='{"user": 30}')
    run_inlet(pipe)
    run_outlet(pipe)
    with pytest.raises(QuotaExceeded, match="Token limit reached.*30"):
        run_inlet(pipe)


def test_usage_line_is_appended_near_the_limit_always_or_never():
    near = make_pipeline(daily_token_limits='{"user": 45}')
    run_inlet(near)
    body = run_outlet(near)
    content = body["messages"][-1]["content"]
    assert content.endswith("Tokens: 40 this reply · 40 of 45 used this day · resets " + content.rsplit("resets ", 1)[1])
    far = make_pipeline(daily_token_limits='{"user": 5000}')
    run_inlet(far)
    assert "Tokens:" not in run_outlet(far)["messages"][-1]["content"]
    always = make_pipeline(daily_token_limits='{"user": 5000}', usage_line="always", language="zh")
    run_inlet(always)
    assert "令牌：本次回复 40" in run_outlet(always)["messages"][-1]["content"]
    never = make_pipeline(daily_token_limits='{"user": 45}', usage_line="never")
    run_inlet(never)
    assert "Tokens:" not in run_outlet(never)["messages"][-1]["content"]


def test_startup_and_valve_updates_never_raise_and_apply_at_once(tmp_path, caplog):
    pipe = Pipeline()
    pipe.valves = pipe.Valves(store_url="nosuch://x")
    asyncio.run(pipe.on_startup())
    assert "nosuch" in caplog.text
    pipe.valves = pipe.Valves(daily_token_limits="[1, 2")
    asyncio.run(pipe.on_valves_updated())
    assert "valve daily_token_limits" in caplog.text
    run_inlet(pipe)  # failure_mode allow: passes, unmetered
    url = f"tinydb://{tmp_path}/store"
    pipe.valves = pipe.Valves(store_url=url, daily_token_limits='{"user": 5000}')
    asyncio.run(pipe.on_valves_updated())
    run_inlet(pipe)
    assert store_of(pipe).url == url and len(events(pipe)) == 1


def test_the_user_directory_is_kept_without_groups():
    pipe = make_pipeline()
    run_inlet(pipe)
    (user,) = store_of(pipe).users()
    assert (user.name, user.email, user.role, user.groups) == ("Alice", "alice@example.com", "user", ())


# -- served the way the Pipelines server does (its request shape, a fresh interpreter, the file alone)
@pytest.fixture
def pipelines_server(tmp_path):
    from e2e.openwebui_server import PipelinesServer, installed

    if not installed():
        missing_service("fastapi/uvicorn from the Open WebUI venv (bash .ci/setup.d/openwebui.sh)")
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "tokenlimit_pipeline.py").write_text((ROOT / "filters" / "tokenlimit_pipeline.py").read_text())
    (folder / "tokenlimit_pipeline").mkdir()
    store = f"tinydb://{tmp_path}/store"
    (folder / "tokenlimit_pipeline" / "valves.json").write_text(json.dumps(
        {"store_url": store, "daily_token_limits": json.dumps({"user": 100, "admin": -1})}))
    server = PipelinesServer(folder)
    try:
        server.wait_ready()
        yield server.client, store
    finally:
        server.stop()


def test_served_filter_meters_and_refuses_through_the_pipelines_request_shape(pipelines_server, tmp_path):
    from tokenlimit_core import open_store

    client, store_url = pipelines_server
    listed = client.json("GET", "/v1/models")["data"]
    assert listed[0]["id"] == "tokenlimit_pipeline"
    assert listed[0]["pipeline"] == {"type": "filter", "valves": True, "pipelines": ["*"], "priority": 0}
    inlet, outlet = request(INLET), request(OUTLET)
    assert client.json("POST", "/v1/tokenlimit_pipeline/filter/inlet", inlet) == inlet["body"]
    body = client.json("POST", "/v1/tokenlimit_pipeline/filter/outlet", outlet)
    assert body["usage_info"] == {"daily_limit": 100, "total_used": 40, "remaining": 60, "current_request": 40}
    client.json("POST", "/v1/tokenlimit_pipeline/filter/inlet", inlet)
    client.json("POST", "/v1/tokenlimit_pipeline/filter/outlet", outlet)
    status, text = client.request("POST", "/v1/tokenlimit_pipeline/filter/inlet", inlet)
    assert status == 500
    assert "Token limit reached" in json.loads(text)["detail"] or "too large" in json.loads(text)["detail"]
    store = open_store(store_url)
    try:
        assert [e.status for e in sorted(store.ledger(0, time.time() + 60), key=lambda e: e.ts)] == \
            ["settled", "settled", "denied"]
    finally:
        store.close()
    # /valves/update replaces every valve and applies at once: a new store, seeded by the new valves
    other = f"tinydb://{tmp_path}/other"
    client.json("POST", "/v1/tokenlimit_pipeline/valves/update", {"store_url": other})
    assert client.json("POST", "/v1/tokenlimit_pipeline/filter/inlet", inlet) == inlet["body"]
    store = open_store(other)
    try:
        assert len(store.ledger(0, time.time() + 60)) == 1
    finally:
        store.close()
