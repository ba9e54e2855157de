"""The Function filter on Open WebUI's real payloads: valves, pairing, usage, refusals, warnings, the loop."""
from __future__ import annotations

import asyncio
import copy
import threading
import time
import uuid

import pytest

from conftest import load_fixture
from tokenlimit_core import Engine, SettingsError, open_store
from tokenlimit_core.engine import QuotaExceeded
from tokenlimit_core.openwebui import Filter
from tokenlimit_core.openwebui import adapter_common as common


def params(name: str) -> dict:
    return copy.deepcopy(load_fixture(name)["params"])


def make_filter(monkeypatch=None, **valves) -> Filter:
    flt = Filter()
    valves.setdefault("store_url", f"memory://{uuid.uuid4().hex}")
    flt.valves = flt.Valves(**valves)
    return flt


def store_of(flt: Filter):
    return flt._engines.get(flt.valves).store


async def inlet(flt: Filter, p: dict, emitter=None, **kw):
    return await flt.inlet(p["body"], __user__=p["__user__"], __metadata__=p["__metadata__"],
                           __event_emitter__=emitter, __model__=p["__model__"], **kw)


async def outlet(flt: Filter, p: dict, metadata: dict):
    return await flt.outlet(p["body"], __user__=p["__user__"], __metadata__=metadata, __model__=p["__model__"])


# -- valves
def test_valves_keep_the_original_names_and_add_the_new_ones():
    names = set(Filter.Valves.model_fields)
    assert {"daily_token_limits", "model_token_limits", "user_specific_limits", "enable_token_estimation",
            "warning_threshold", "data_path", "include_usage_info", "reset_hour", "target_models", "store_url",
            "timezone", "language", "failure_mode", "show_warnings", "refuse_tasks", "priority"} <= names


def test_environment_is_read_into_valve_defaults_when_the_filter_is_created(monkeypatch):
    monkeypatch.setenv("TOKEN_LIMIT_DAILY_LIMITS", '{"user": 1234, "admin": -1}')
    monkeypatch.setenv("TOKEN_LIMIT_RESET_HOUR", "6")
    monkeypatch.setenv("TOKEN_LIMIT_INCLUDE_USAGE_INFO", "false")
    monkeypatch.setenv("TOKEN_LIMIT_TARGET_MODELS", "gpt-4*,llama3:*")
    flt = Filter()
    monkeypatch.delenv("TOKEN_LIMIT_RESET_HOUR")
    # Open WebUI rebuilds valves as self.Valves(**saved): the environment defaults survive it.
    rebuilt = flt.Valves(**{"language": "zh"})
    for valves in (flt.valves, rebuilt):
        assert valves.daily_token_limits == '{"user": 1234, "admin": -1}'
        assert valves.reset_hour == 6 and valves.include_usage_info is False
        assert valves.target_models == "gpt-4*,llama3:*"
    assert rebuilt.language == "zh"
    seed = common.settings_from_valves(rebuilt).seed_policy()
    assert seed.roles["user"] == 1234 and seed.reset_hour == 6 and seed.target_models == ["gpt-4*", "llama3:*"]


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("TOKEN_LIMIT_WARNING_THRESHOLD", "lots")
    with pytest.raises(SettingsError, match="TOKEN_LIMIT_WARNING_THRESHOLD"):
        Filter()
    monkeypatch.delenv("TOKEN_LIMIT_WARNING_THRESHOLD")
    monkeypatch.setenv("TOKEN_LIMIT_DAILY_LIMITS", "{user: 5}")
    with pytest.raises(SettingsError, match="TOKEN_LIMIT_DAILY_LIMITS"):
        Filter()


def test_a_bad_valve_is_named_and_failure_mode_decides(caplog):
    p = params("function_inlet_nonstream.json")
    flt = make_filter(daily_token_limits="{not json")
    body = asyncio.run(inlet(flt, p))  # allow: passes, logged with the valve's name
    assert body is p["body"]
    assert "valve daily_token_limits" in caplog.text
    flt.valves = flt.Valves(daily_token_limits="{not json", failure_mode="block")
    with pytest.raises(QuotaExceeded, match="unavailable"):
        asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))


def test_valves_are_reread_on_every_call():
    flt = make_filter(daily_token_limits='{"user": 5000}')
    first = store_of(flt)
    asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))
    flt.valves = flt.Valves(store_url=f"memory://{uuid.uuid4().hex}")  # Open WebUI swaps the object
    asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))
    second = store_of(flt)
    assert second is not first
    assert len(first.ledger(0, time.time() + 1)) == 1 and len(second.ledger(0, time.time() + 1)) == 1


def test_limits_in_the_store_win_over_valves():
    url = f"memory://{uuid.uuid4().hex}"
    flt = make_filter(store_url=url, daily_token_limits='{"user": 5000}')
    asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))
    flt.valves = flt.Valves(store_url=url, daily_token_limits='{"user": 1}')
    asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))  # the stored 5,000 still applies


# -- API flow
def test_api_nonstream_charges_then_settles_with_the_reply_usage_once():
    flt = make_filter(daily_token_limits='{"user": 5000}')
    p, o = params("function_inlet_nonstream.json"), params("function_outlet_nonstream.json")
    metadata = p["__metadata__"]
    asyncio.run(inlet(flt, p))
    request_id = metadata[common.PAIRING_KEY]["request_id"]
    assert store_of(flt).get_event(request_id).status == "pending"
    body = asyncio.run(outlet(flt, o, metadata))
    event = store_of(flt).get_event(request_id)
    assert (event.status, event.actual_prompt, event.actual_completion) == ("settled", 15, 25)
    assert event.source == "api" and event.role == "user"
    assert body["usage_info"] == {"daily_limit": 5000, "total_used": 40, "remaining": 4960, "current_request": 40}
    again = asyncio.run(outlet(flt, params("function_outlet_nonstream.json"), metadata))
    assert again["usage_info"]["total_used"] == 40  # never settled twice
    assert len(store_of(flt).ledger(0, time.time() + 1)) == 1


def test_usage_info_is_left_out_when_the_valve_says_so():
    flt = make_filter(include_usage_info=False)
    p = params("function_inlet_nonstream.json")
    asyncio.run(inlet(flt, p))
    assert "usage_info" not in asyncio.run(outlet(flt, params("function_outlet_nonstream.json"), p["__metadata__"]))


def test_stream_asks_for_usage_and_settles_with_the_final_chunk():
    flt = make_filter()
    p = params("function_inlet_stream.json")
    body = asyncio.run(inlet(flt, p))
    assert body["stream_options"] == {"include_usage": True}
    metadata = p["__metadata__"]
    for event in load_fixture("function_stream_events_include_usage.json")["events"]:
        assert flt.stream(copy.deepcopy(event), __metadata__=metadata) == event
    o = params("function_outlet_stream.json")
    assert "usage" not in o["body"]["messages"][-1]
    asyncio.run(outlet(flt, o, metadata))
    event = store_of(flt).get_event(metadata[common.PAIRING_KEY]["request_id"])
    assert (event.actual_prompt, event.actual_completion, event.actual_source) == (15, 25, "openai")


def test_stream_without_any_usage_settles_with_an_estimate_of_the_reply():
    flt = make_filter()
    p = params("function_inlet_stream.json")
    asyncio.run(inlet(flt, p))
    metadata = p["__metadata__"]
    for event in load_fixture("function_stream_events.json")["events"]:
        flt.stream(event, __metadata__=metadata)
    asyncio.run(outlet(flt, params("function_outlet_stream.json"), metadata))
    event = store_of(flt).get_event(metadata[common.PAIRING_KEY]["request_id"])
    assert event.status == "settled" and event.actual_source == "estimate" and event.actual_completion > 0


# -- web UI flow
def test_webui_flow_pairs_by_message_id_and_counts_only_this_reply():
    flt = make_filter()
    p = params("conversation_3turns_inlet_frontend.json")
    asyncio.run(inlet(flt, p))
    metadata = p["__metadata__"]
    message_id = metadata["message_id"]
    assert metadata[common.PAIRING_KEY]["request_id"] == message_id
    o = params("conversation_3turns_outlet_frontend.json")
    assert o["body"]["id"] == message_id
    earlier = [m for m in o["body"]["messages"][:-1] if m.get("role") == "assistant" and m.get("usage")]
    assert earlier, "the fixture's earlier replies carry their own usage"
    this = o["body"]["messages"][-1].get("usage") or {}
    asyncio.run(outlet(flt, o, metadata))
    event = store_of(flt).get_event(message_id)
    assert event.source == "webui" and event.status == "settled"
    assert (event.actual_prompt, event.actual_completion) == (this["input_tokens"], this["output_tokens"]) == (4006, 19)


def test_a_webui_reply_without_usage_is_estimated_not_taken_from_earlier_replies():
    flt = make_filter()
    p = params("conversation_3turns_inlet_frontend.json")
    asyncio.run(inlet(flt, p))
    o = params("conversation_3turns_outlet_frontend.json")
    last = o["body"]["messages"][-1]
    last.pop("usage")
    last.pop("info", None)
    asyncio.run(outlet(flt, o, p["__metadata__"]))
    event = store_of(flt).get_event(o["body"]["id"])
    assert event.actual_source == "estimate" and event.actual_prompt == event.est_prompt
    assert event.actual_prompt not in (3950, 3977)


def test_an_outlet_without_the_inlets_metadata_pairs_by_the_reply_id():
    flt = make_filter()
    p = params("frontend_inlet_stream.json")
    asyncio.run(inlet(flt, p))
    o = params("frontend_outlet_stream.json")
    asyncio.run(outlet(flt, o, {}))  # e.g. /api/chat/completed from an older browser flow
    assert store_of(flt).get_event(o["body"]["id"]).status == "settled"


def test_reusing_a_message_id_charges_again_under_a_new_id():
    flt = make_filter()
    first, second = params("frontend_inlet_stream.json"), params("frontend_inlet_stream.json")
    asyncio.run(inlet(flt, first))
    asyncio.run(inlet(flt, second))  # "continue response" keeps the assistant message id
    ids = {first["__metadata__"][common.PAIRING_KEY]["request_id"],
           second["__metadata__"][common.PAIRING_KEY]["request_id"]}
    assert len(ids) == 2
    assert len(store_of(flt).ledger(0, time.time() + 1)) == 2


# -- refusals, admins, base models, tasks
def test_refusal_raises_with_the_limit_used_left_and_reset_in_the_configured_language():
    flt = make_filter(daily_token_limits='{"user": 60}', language="en")
    p = params("function_inlet_nonstream.json")
    asyncio.run(inlet(flt, p))
    asyncio.run(outlet(flt, params("function_outlet_nonstream.json"), p["__metadata__"]))
    with pytest.raises(QuotaExceeded) as refused:
        asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))
    text = str(refused.value)
    assert "60" in text and "40" in text and "total limit" in text and "UTC" in text or ":" in text
    flt.valves = flt.Valves(store_url=flt.valves.store_url, language="zh")
    with pytest.raises(QuotaExceeded, match="令牌"):
        asyncio.run(inlet(flt, params("function_inlet_nonstream.json")))


def test_an_admin_is_never_refused_by_default():
    flt = make_filter(daily_token_limits='{"user": 1}', model_token_limits='{"gpt-4o-mini": 1}')
    for _ in range(3):
        asyncio.run(inlet(flt, params("function_inlet_nonstream_admin.json")))


def test_the_user_comes_only_from_open_webuis_user_object():
    flt = make_filter()
    p = params("function_inlet_nonstream.json")
    p["body"]["user"] = {"id": "mallory"}
    p["body"]["metadata"]["user_id"] = "mallory"
    asyncio.run(inlet(flt, p))
    event = store_of(flt).get_event(p["__metadata__"][common.PAIRING_KEY]["request_id"])
    assert event.user_id == p["__user__"]["id"]
    user = next(u for u in store_of(flt).users() if u.id == event.user_id)
    assert (user.name, user.email, user.role) == ("Alice", "alice@example.com", "user")


def test_custom_models_are_also_limited_by_their_base_model():
    flt = make_filter(model_token_limits='{"gpt-4o-mini": 5}')
    p = params("function_inlet_nonstream.json")
    p["body"]["model"] = "my-tutor"
    p["__model__"] = {"id": "my-tutor", "info": {"base_model_id": "gpt-4o-mini"}}
    with pytest.raises(QuotaExceeded, match="gpt-4o-mini|my-tutor"):
        asyncio.run(inlet(flt, p))
    event = store_of(flt).ledger(0, time.time() + 1)[0]
    assert (event.model, event.base_model, event.status) == ("my-tutor", "gpt-4o-mini", "denied")


def test_background_tasks_are_metered_marked_and_refused_only_when_configured():
    flt = make_filter(daily_token_limits='{"user": 5}')
    p = params("function_inlet_nonstream.json")
    p["__metadata__"]["task"] = "title_generation"
    asyncio.run(inlet(flt, p))  # over the limit, but tasks are not refused by default
    event = store_of(flt).ledger(0, time.time() + 1)[0]
    assert event.task == "title_generation" and event.status == "settled" and event.actual_source == "estimate"
    strict = make_filter(daily_token_limits='{"user": 5}', refuse_tasks=True)
    p = params("function_inlet_nonstream.json")
    p["__metadata__"]["task"] = "title_generation"
    with pytest.raises(QuotaExceeded):
        asyncio.run(inlet(strict, p))


def test_unmetered_models_pass_without_a_charge():
    flt = make_filter(target_models="llama3:*", daily_token_limits='{"user": 1}')
    p = params("function_inlet_nonstream.json")
    body = asyncio.run(inlet(flt, p))
    assert "stream_options" not in body and common.PAIRING_KEY not in p["__metadata__"]
    assert store_of(flt).ledger(0, time.time() + 1) == []


# -- warnings
class Emitter:
    def __init__(self, fail: bool = False):
        self.events, self.fail = [], fail

    async def __call__(self, event):
        if self.fail:
            raise TypeError("'NoneType' object is not callable")
        self.events.append(event)


def near_limit_filter(**valves) -> Filter:
    """A filter whose user has spent 40 of 70 tokens: the next request (~25) passes the 0.8 threshold."""
    flt = make_filter(daily_token_limits='{"user": 70}', **valves)
    p = params("function_inlet_nonstream.json")
    asyncio.run(inlet(flt, p))
    asyncio.run(outlet(flt, params("function_outlet_nonstream.json"), p["__metadata__"]))
    return flt


def test_near_the_limit_the_user_gets_a_status_line_and_a_notification():
    emitter = Emitter()
    asyncio.run(inlet(near_limit_filter(), params("function_inlet_nonstream.json"), emitter))
    kinds = [e["type"] for e in emitter.events]
    assert kinds == ["status", "notification"]
    # The warning counts this request: 40 used + 25 estimated = 65 of 70 (93%), 5 left.
    assert "93%" in emitter.events[0]["data"]["description"] and "5 left" in emitter.events[0]["data"]["description"]
    assert emitter.events[1]["data"]["type"] == "warning"
    assert emitter.events[1]["data"]["content"] == emitter.events[0]["data"]["description"]


def test_warnings_can_be_switched_off():
    quiet = Emitter()
    asyncio.run(inlet(near_limit_filter(show_warnings=False), params("function_inlet_nonstream.json"), quiet))
    assert quiet.events == []


def test_a_failing_emitter_never_breaks_the_request():
    asyncio.run(inlet(near_limit_filter(), params("function_inlet_nonstream.json"), Emitter(fail=True)))


# -- bad input
@pytest.mark.parametrize("body", [None, {}, {"model": None, "messages": None}, {"messages": [None, 5, {"content": None}]},
                                  {"model": "m", "messages": [{"role": "user", "content": [{"type": "x"}] * 3}]}])
def test_odd_bodies_never_crash(body):
    flt = make_filter()
    p = params("function_inlet_nonstream.json")
    asyncio.run(flt.inlet(body, __user__=p["__user__"], __metadata__={}, __model__=None))
    asyncio.run(flt.outlet(body, __user__=p["__user__"], __metadata__={}, __model__=None))
    asyncio.run(flt.inlet(p["body"], __user__=None, __metadata__=None))


# -- the event loop
def test_a_2mb_paste_is_charged_off_the_event_loop(monkeypatch):
    """Tokenizing and store I/O run in a worker thread and the loop keeps serving meanwhile.

    How long the loop stalls is measured by bench/bench_openwebui_loop.py (timings belong in benchmarks).
    """
    flt = make_filter(daily_token_limits='{"user": 10000000}')
    p = params("function_inlet_nonstream.json")
    p["body"]["messages"][0]["content"] = ("lorem ipsum 汉字 dolor sit amet, " * 70000)[:2_000_000]
    threads = []
    original = Engine.check
    in_check = threading.Event()

    def recording_check(self, *args, **kwargs):
        threads.append(threading.current_thread())
        in_check.set()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "check", recording_check)

    async def scenario():
        ticks_during_check = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks_during_check
            while not done.is_set():
                await asyncio.sleep(0)
                if in_check.is_set():
                    ticks_during_check += 1

        tick = asyncio.create_task(ticker())
        await inlet(flt, p)
        done.set()
        await tick
        return threading.current_thread(), ticks_during_check

    loop_thread, ticks = asyncio.run(scenario())
    assert threads and all(t is not loop_thread for t in threads)
    assert ticks > 0  # other coroutines ran while the 2 MB request was being estimated and charged


@pytest.mark.parametrize("mode", ["allow", "block"])
def test_an_unreachable_store_applies_the_failure_mode(mode, caplog):
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flt = make_filter(store_url=f"redis://127.0.0.1:{port}/0", failure_mode=mode)
    p = params("function_inlet_nonstream.json")
    if mode == "allow":
        assert asyncio.run(inlet(flt, p)) is p["body"]
    else:
        with pytest.raises(QuotaExceeded, match="unavailable"):
            asyncio.run(inlet(flt, p))
    assert f"127.0.0.1:{port}" in caplog.text
