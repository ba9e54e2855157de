"""Estimation: the cookbook counting rule, content shapes, caching, fallbacks, completion expectation."""
import json

import pytest

from conftest import CALIBRATION, quicktok_or_skip
from tokenlimit_core import tokenizer as tokenizer_module
from tokenlimit_core.estimate import (Estimator, Tokenizer, apply_calibration, calibration_for, count_by_length,
                                      encoding_for, expected_completion)
from tokenlimit_core.policy import Calibration, Policy


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
    real = Tokenizer.counter

    def counter(self):
        count = real(self)
        return lambda text: calls.append(text) or count(text)

    monkeypatch.setattr(Tokenizer, "counter", counter)
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
    monkeypatch.setattr(tokenizer_module, "_load_encoding", lambda wanted: (None, "chars"))
    monkeypatch.setattr(Tokenizer, "_loaded", {})
    estimate = Estimator().estimate({"messages": [{"role": "user", "content": "a" * 400}]}, "gpt-4", Calibration())
    assert estimate.method == "chars" and estimate.prompt > 100
    chinese = Estimator().estimate({"messages": [{"role": "user", "content": "你好" * 50}]}, "gpt-4",
                                   Calibration(han=0.1))  # detail features without token ids
    assert chinese.features.han == 100 and chinese.features.han_tokens == 0


def test_missing_encoding_falls_back_to_cl100k():
    assert Tokenizer("o200k_base").method in ("quicktok:o200k_base", "tiktoken:o200k_base", "tiktoken:cl100k_base")
    assert Tokenizer("no_such_encoding").method == "tiktoken:cl100k_base"


def test_encoding_per_model_family():
    assert encoding_for("gpt-4o-mini") == "o200k_base"
    assert encoding_for("o3-mini") == encoding_for("gpt-oss:20b") == "o200k_base"
    assert encoding_for("gpt-4") == "cl100k_base"
    assert encoding_for("llama2:7b") == encoding_for("mistral") == "cl100k_base"
    assert encoding_for("qwen3:8b") == encoding_for("Qwen/Qwen2.5-7B") == "qwen3"
    assert encoding_for("llama3.1:8b") == encoding_for("meta-llama/Llama-3.3-70B-Instruct") == "llama3"


CHINESE = {"messages": [{"role": "system", "content": "你是一个乐于助人的助手。"},
                        {"role": "user", "content": "请用一句话解释什么是令牌限额，以及它为什么重要。"}]}


def test_quicktok_counts_gpt4o_and_qwen_exactly(estimator):
    quicktok = quicktok_or_skip()
    estimate = estimator.estimate(CHINESE, "qwen3:8b", Calibration())
    assert estimate.method == "quicktok:qwen3"
    texts = [m["content"] for m in CHINESE["messages"]] + ["system", "user"]
    assert estimate.features.tokens == sum(quicktok.get_encoding("qwen3").count(t) for t in texts)
    row = rows(60)[0]
    gpt4o = estimator.estimate({"messages": row["messages"]}, "gpt-4o", Calibration())
    assert gpt4o.method == "quicktok:o200k_base"
    assert gpt4o.prompt == row["usage"]["gpt-4o"]["prompt_tokens"]  # o200k + the cookbook rule is exact


def test_without_quicktok_cl100k_serves(without_quicktok):
    estimate = Estimator().estimate(CHINESE, "qwen3:8b", Calibration())
    assert estimate.method == "tiktoken:cl100k_base"
    assert Tokenizer("o200k_base").method in ("tiktoken:o200k_base", "tiktoken:cl100k_base")


def test_calibration_decides_the_encoding(estimator):
    quicktok_or_skip()
    on_cl100k = estimator.estimate(CHINESE, "qwen3:8b", Calibration(encoding="cl100k_base"))
    assert on_cl100k.method == "tiktoken:cl100k_base"
    older = Calibration(fitted_on="calibration.jsonl: 365 conversations; tiktoken:cl100k_base; 2026-12-01")
    assert estimator.estimate(CHINESE, "qwen3:8b", older).method == "tiktoken:cl100k_base"
    assert estimator.estimate(CHINESE, "mistral", Calibration(encoding="qwen3")).method == "quicktok:qwen3"


def test_calibration_on_a_missing_encoding_gives_way_to_its_twin(without_quicktok, caplog):
    own = Calibration(encoding="qwen3", tokens=1.0, per_message=4)
    twin = Calibration(encoding="cl100k_base", tokens=0.7, per_message=4)
    policy = Policy(calibration={"qwen3*": own, "qwen3*@cl100k_base": twin})
    assert calibration_for(policy, "qwen3:8b") == twin
    assert calibration_for(Policy(calibration={"qwen3*": own}), "qwen3:8b") == own
    assert calibration_for(policy, "llama3") == Calibration()  # twins match no model by themselves
    estimate = Estimator().estimate(CHINESE, "qwen3:8b", own)  # no twin: say so, and still estimate
    assert estimate.method == "tiktoken:cl100k_base (calibrated on qwen3)" and estimate.prompt > 0
    assert "quicktok-v1" in caplog.text


def test_twin_is_not_used_where_the_own_encoding_exists():
    quicktok_or_skip()
    own, twin = Calibration(encoding="qwen3"), Calibration(encoding="cl100k_base", tokens=0.7)
    assert calibration_for(Policy(calibration={"qwen3*": own, "qwen3*@cl100k_base": twin}), "qwen3:8b") == own


def test_detail_features_are_counted_only_when_weighed(estimator):
    plain = estimator.estimate(CHINESE, "gpt-4", Calibration())
    assert plain.features.han == 0 and plain.features.tokens > 0
    weighed = Calibration(han=0.25, han_tokens=-0.5, digits=0.1)
    detailed = estimator.estimate(CHINESE, "gpt-4", weighed)
    assert detailed.features.han > 20 and detailed.features.han_tokens > 0
    assert detailed.features.tokens == plain.features.tokens
    assert detailed.prompt == apply_calibration(estimator.features(CHINESE, "gpt-4")[0], weighed)
    for row in rows(30):  # the two paths agree on every shared feature
        body = {"messages": row["messages"]}
        full, lean = estimator.features(body, "gpt-4")[0], estimator.features(body, "gpt-4", detail=False)[0]
        assert (full.tokens, full.messages, full.names, full.images) == \
            (lean.tokens, lean.messages, lean.names, lean.images)


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
