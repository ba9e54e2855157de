"""Tokenizers: which library serves which encoding, fallbacks, and counting that never raises."""
import sys

import pytest

from conftest import quicktok_or_skip
from tokenlimit_core import tokenizer as tk
from tokenlimit_core.tokenizer import MAX_TOKENIZE_CHARS, Tokenizer, count_by_length, encoding_available, preload

ODD = ["", "a", "\ud800 lone surrogate 你", "<|endoftext|><|im_start|>", "e\u0301 ＡＢＣ 😀", "中文" * 50]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "qwen3", "llama3"])
def test_counting_never_raises(name):
    tokenizer = Tokenizer(name)
    for text in ODD:
        assert (tokenizer.count(text) > 0) == bool(text), text
    assert tokenizer.count("<|endoftext|>") > 1  # special-token text counts as plain text
    huge = "word " * (MAX_TOKENIZE_CHARS // 4)
    assert tokenizer.count(huge) == count_by_length(huge)


def test_quicktok_serves_its_encodings_first_and_agrees_with_tiktoken():
    quicktok = quicktok_or_skip()
    assert Tokenizer("o200k_base").method == "quicktok:o200k_base"  # local: no download attempt
    assert Tokenizer("qwen3").method == "quicktok:qwen3"
    assert Tokenizer("llama3").method == "quicktok:llama3"
    assert Tokenizer("cl100k_base").method == "tiktoken:cl100k_base"  # tiktoken stays the cl100k reference
    ours, theirs = Tokenizer("cl100k_base"), quicktok.get_encoding("cl100k_base")
    for text in ODD[1:] + ["Hello, world! 你好，世界。 def f(x): return x ** 2"]:
        if "\ud800" not in text:
            assert ours.token_ids(text) == theirs.encode_ordinary(text)
    assert encoding_available("qwen3") and encoding_available("cl100k_base")
    assert not encoding_available("no_such_encoding")


def test_quicktok_token_classes_match_decoded_bytes():
    quicktok_or_skip()
    tokenizer = Tokenizer("qwen3")
    encoding = tokenizer._encoding()[0]
    classes = tokenizer.token_classes()
    assert len(classes) == encoding.n_vocab
    for token in (0, 100, 108386, 99489, 3837, encoding.n_vocab - 1):
        piece = tk._token_bytes(encoding, token)
        expected = 0 if piece.isascii() else 1 if any(0xE4 <= b <= 0xE9 for b in piece) else 2
        assert classes[token] == expected, token


def test_without_quicktok_cl100k_serves_every_encoding(without_quicktok):
    assert Tokenizer("qwen3").method == "tiktoken:cl100k_base"
    assert Tokenizer("o200k_base").method in ("tiktoken:o200k_base", "tiktoken:cl100k_base")
    assert not encoding_available("qwen3")


def test_without_any_tokenizer_length_estimates(monkeypatch, without_quicktok):
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    tokenizer = Tokenizer("cl100k_base")
    assert tokenizer.method == "chars" and tokenizer.encoding_name == "chars"
    assert tokenizer.count("abcd" * 10) == 10 and tokenizer.count("") == 0
    assert tokenizer.token_ids("abc") is None and tokenizer.token_classes() is None


def test_preload_loads_every_encoding_once(without_quicktok):
    assert preload() == {"cl100k_base": "tiktoken:cl100k_base", "o200k_base": Tokenizer("o200k_base").method,
                         "qwen3": "tiktoken:cl100k_base", "llama3": "tiktoken:cl100k_base"}
    assert set(Tokenizer._loaded) == {"cl100k_base", "o200k_base", "qwen3", "llama3"}


def test_chars_is_an_encoding_of_its_own():
    tokenizer = Tokenizer("chars")  # what a calibration fitted without any tokenizer asks for
    assert tokenizer.method == "chars" and tokenizer.count("abcd" * 10) == 10
    assert encoding_available("chars")


def test_count_by_length():
    assert count_by_length("") == 0
    assert count_by_length("abcd" * 10) == 10
    assert count_by_length("你好世界") == 4
