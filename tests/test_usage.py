"""Actual usage from every response shape: real Open WebUI payloads and provider formats."""
import pytest

from conftest import load_fixture
from tokenlimit_core.usage import from_response, from_usage_dict, reply_text


@pytest.mark.parametrize("name, prompt, completion", [
    ("function_outlet_nonstream.json", 15, 25),
    ("function_outlet_stream_include_usage.json", 15, 25),
    ("frontend_outlet_nonstream.json", 3958, 25),
    ("conversation_3turns_outlet_frontend.json", 4006, 19),  # this turn only, not earlier turns
    ("conversation_3turns_outlet_api.json", 63, 19),
    ("multimodal_outlet.json", 94, 19),
])
def test_open_webui_outlet_bodies(name, prompt, completion):
    usage = from_response(load_fixture(name)["params"]["body"])
    assert (usage.prompt_tokens, usage.completion_tokens, usage.source) == (prompt, completion, "openwebui")


@pytest.mark.parametrize("name", ["function_outlet_stream.json", "frontend_outlet_stream.json",
                                  "multimodal_outlet_stream.json"])
def test_streamed_outlet_without_usage_is_none(name):
    body = load_fixture(name)["params"]["body"]
    assert from_response(body) is None
    assert reply_text(body)  # the reply text remains for an estimate


def test_stream_usage_chunk():
    event = load_fixture("function_stream_event_last_chunk.json")["params"]["event"]
    assert from_response(event).total == 40


def test_openai_with_cached_tokens():
    usage = from_response({"usage": {"prompt_tokens": 100, "completion_tokens": 7,
                                     "prompt_tokens_details": {"cached_tokens": 64}}})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.source) == (100, 7, 64, "openai")


def test_ollama_native():
    usage = from_response({"model": "llama3", "prompt_eval_count": 26, "eval_count": 298, "done": True})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.source) == (26, 298, "ollama")


def test_anthropic_style():
    usage = from_usage_dict({"input_tokens": 12, "output_tokens": 30, "cache_read_input_tokens": 5})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.source) == (12, 30, 5, "anthropic")


def test_summed_input_output_after_tool_rounds_win():
    usage = from_usage_dict({"prompt_tokens": 50, "completion_tokens": 5, "input_tokens": 120, "output_tokens": 9},
                            "openwebui")
    assert (usage.prompt_tokens, usage.completion_tokens) == (120, 9)


def test_gemini_style():
    usage = from_response({"usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4}})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.source) == (8, 4, "gemini")


@pytest.mark.parametrize("body", [
    None, 5, "text", [], {}, {"usage": None}, {"usage": "12"}, {"usage": {"prompt_tokens": "many"}},
    {"usage": {"prompt_tokens": -3}}, {"messages": None}, {"messages": [None]}, {"messages": "x"},
    {"messages": [{"role": "assistant", "usage": [1, 2]}]}, {"usage": {"prompt_tokens": float("nan")}},
    {"usage": {"prompt_tokens": True, "completion_tokens": False}},
])
def test_unknown_shapes_give_none(body):
    assert from_response(body) is None


def test_total_only_is_kept_as_completion():
    usage = from_response({"usage": {"total_tokens": 77}})
    assert usage.total == 77


def test_reply_text_shapes():
    assert reply_text({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert reply_text({"message": {"content": [{"type": "text", "text": "a"}, "b"]}}) == "ab"
    assert reply_text({"messages": [{"role": "user", "content": "q"}]}) == ""
    assert reply_text(None) == ""
