"""Estimation: the cookbook counting rule, content shapes, caching, fallbacks, completion expectation."""
import json

import pytest

from conftest import CALIBRATION
from tokenlimit_core import estimate as est
from tokenlimit_core.estimate import (Estimator, Tokenizer, count_by_length, encoding_for, expected_completion)
from tokenlimit_core.policy import Calibration


@pytest.fixture
def estimator():
    return Estimator()


def rows(n=60):
    with open(CALIBRATION, encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(n), fh)]


def test_uncalibrated_prompt_matches_gpt4_exactly(estimator):
    """cl100k + OpenAI's rule (3/message, 1/name, 3 priming, 85/low-detail image) is gpt-4's count."""
    for row in rows():
        estimate = estimator.estimate({"messages": row["messages"]}, "gpt-4", Calibration())
        assert estimate.prompt == row["usage"]["gpt-4"]["prompt_tokens"], row["id"]


def test_method_is_reported(estimator):
    estimate = estimator.estimate({"messages": [{"role": "user", "content": "hi"}]}, "gpt-4", Calibration())
    assert estimate.method == "tiktoken:cl100k_base"


def test_list_content_images_and_names(estimator):
    body = {"messages": [{"role": "user", "name": "ann", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}}]}]}
    f, _ = estimator.features(body, "gpt-4")
    assert (f.messages, f.names, f.images) == (1, 1, 1)
    assert f.tokens < 20  # the base64 payload is not counted as text
    assert estimator.estimate(body, "gpt-4", Calibration(per_image=170)).prompt - \
        estimator.estimate(body, "gpt-4", Calibration(per_image=85)).prompt == 85


def test_tool_calls_tools_and_system_prompt_count(estimator):
    plain = {"messages": [{"role": "user", "content": "weather?"}]}
    with_tools = dict(plain, tools=[{"type": "function", "function": {"name": "get_weather",
                                                                       "parameters": {"type": "object"}}}],
                      system="You are terse.")
    with_tools["messages"] = plain["messages"] + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "get_weather",
                                                                                        "arguments": "{}"}}]}]
    assert estimator.features(with_tools, "gpt-4")[0].tokens > estimator.features(plain, "gpt-4")[0].tokens + 20


def test_script_features(estimator):
    f, _ = estimator.features({"messages": [{"role": "user", "content": "你好，世界 こんにちは 안녕 привет"}]}, "x")
    assert f.han >= 4 and f.kana_hangul == 7 and f.cyrillic == 6


def test_per_message_cache_makes_the_next_turn_cheap(estimator, monkeypatch):
    calls = []
    real = Tokenizer.count
    monkeypatch.setattr(Tokenizer, "count", lambda self, text: calls.append(text) or real(self, text))
    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i} " * 30}
            for i in range(40)]
    estimator.estimate({"messages": chat}, "gpt-4", Calibration())
    cold = len(calls)
    calls.clear()
    chat.append({"role": "user", "content": "one more question"})
    estimator.estimate({"messages": chat}, "gpt-4", Calibration())
    assert cold >= 40 and len(calls) <= 2  # only the new message's text (and its role, if uncached)


def test_cache_is_bounded():
    small = Estimator(cache_entries=10)
    for i in range(50):
        small.text_features(f"text {i}", Tokenizer("cl100k_base"))
    assert len(small._cache) == 10


def test_huge_text_is_estimated_by_length_quickly(estimator):
    huge = "lorem ipsum dolor sit amet " * 80_000  # ~2 MB
    estimate = estimator.estimate({"messages": [{"role": "user", "content": huge}]}, "gpt-4", Calibration())
    assert estimate.method.endswith("+length")
    assert 0.5 * len(huge) / 4 < estimate.prompt < 2 * len(huge) / 4


def test_offline_fallback_to_characters(monkeypatch):
    monkeypatch.setattr(est, "_load_encoding", lambda wanted: (None, "chars"))
    monkeypatch.setattr(Tokenizer, "_loaded", {})
    estimate = Estimator().estimate({"messages": [{"role": "user", "content": "a" * 400}]}, "gpt-4", Calibration())
    assert estimate.method == "chars" and estimate.prompt > 100


def test_missing_encoding_falls_back_to_cl100k():
    assert Tokenizer("o200k_base").method in ("tiktoken:o200k_base", "tiktoken:cl100k_base")
    assert Tokenizer("no_such_encoding").method == "tiktoken:cl100k_base"


def test_encoding_per_model_family():
    assert encoding_for("gpt-4o-mini") == "o200k_base"
    assert encoding_for("o3-mini") == "o200k_base"
    assert encoding_for("gpt-4") == "cl100k_base"
    assert encoding_for("llama3:8b") == "cl100k_base"


def test_count_by_length():
    assert count_by_length("abcd" * 10) == 10
    assert count_by_length("你好世界") == 4


@pytest.mark.parametrize("body, calibration, expected", [
    ({"max_tokens": 300}, Calibration(), 300),
    ({"max_completion_tokens": 50, "max_tokens": 300}, Calibration(), 50),
    ({"options": {"num_predict": 77}}, Calibration(), 77),
    ({"max_tokens": 10**9}, Calibration(), 4096),
    ({}, Calibration(completion_expected=640), 640),
    ({}, Calibration(), 500),  # half the prompt, as the original filter did
    ({"max_tokens": "lots"}, Calibration(), 500),
    ({"max_tokens": True}, Calibration(), 500),
])
def test_completion_expectation(body, calibration, expected):
    assert expected_completion(body, 1000, calibration, 4096) == expected


def test_reply_tokens(estimator):
    assert estimator.reply_tokens("Hello world", "gpt-4", Calibration()) == 2
    assert estimator.reply_tokens(None, "gpt-4", Calibration()) == 0
