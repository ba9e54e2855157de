"""Calibration against the shared calibration set: fit on ~60 %, check on the rest (split by id hash).

DESIGN.md's goal: after calibration, per family (gpt-4o, gpt-4, llama3, qwen3)
and per language mix (en, zh, code, mixed), median absolute error ≤ 2 % and
90th percentile ≤ 6 %. Errors are measured on integer estimates, as charged,
on both ways of counting (see PATHS).
"""
from __future__ import annotations

import json

import pytest

from tokenlimit_core import calibrate
from tokenlimit_core.estimate import Estimator, Features, apply_calibration, needs_detail
from tokenlimit_core.policy import Calibration

from conftest import CALIBRATION, missing_service

FAMILIES = ("gpt-4o", "gpt-4", "llama3", "qwen3")
MEDIAN_GOAL, P90_GOAL = 2.0, 6.0
# Two ways to count: "own" — each family's own encoding where quicktok-v1 serves it (o200k_base for gpt-4o,
# qwen3 for Qwen, llama3 for Llama 3; CI installs it), held to the goal in every cell; "cl100k" — every family
# from cl100k_base features, as the twin calibrations do where quicktok is missing. The cl100k path keeps one
# known gap on this split: short Chinese prompts of Qwen3 (12–50 tokens, one token = 2–8 %), whose merges
# cl100k counts cannot predict (p90 7.1 %; 6.1–8.4 % on other random 60/40 splits, see docs/calibration.md).
PATHS = ("own", "cl100k")
CL100K_P90_GAPS = {("qwen3", "zh"): 8.0}


@pytest.fixture(scope="module")
def split_rows():
    return calibrate.split(calibrate.load_conversations(CALIBRATION))


def _quicktok_installed() -> bool:
    try:
        import quicktok  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module", params=PATHS)
def fitted(request, split_rows):
    """(path, {family: (calibration fitted on the fit part, check-part samples)})."""
    if request.param == "own" and not _quicktok_installed():
        missing_service("quicktok-v1 (the families' own encodings)")
    encoding = None if request.param == "own" else "cl100k_base"
    fit_rows, check_rows = split_rows
    estimator = Estimator()
    out = {}
    for family in FAMILIES:
        fit_samples = calibrate.samples(fit_rows, family, estimator, encoding=encoding)
        out[family] = (calibrate.fit(fit_samples, source="calibration.jsonl"),
                       calibrate.samples(check_rows, family, estimator, encoding=encoding))
    return request.param, out


@pytest.fixture(scope="module")
def tables(fitted):
    path, by_family = fitted
    before = calibrate.error_table([calibrate.errors(s, Calibration(), f) for f, (_, s) in by_family.items()])
    after = calibrate.error_table([calibrate.errors(s, c, f) for f, (c, s) in by_family.items()])
    return path, before.set_index(["family", "mix"]), after.set_index(["family", "mix"])


def test_split_is_deterministic_and_about_60_40(split_rows):
    fit_rows, check_rows = split_rows
    assert 0.55 < len(fit_rows) / (len(fit_rows) + len(check_rows)) < 0.65
    again = calibrate.split(calibrate.load_conversations(CALIBRATION))
    assert [r["id"] for r in again[0]] == [r["id"] for r in fit_rows]
    assert not {r["id"] for r in fit_rows} & {r["id"] for r in check_rows}
    for mix in calibrate.MIXES:  # every mix is on both sides
        assert sum(r["mix"] == mix for r in fit_rows) >= 30 and sum(r["mix"] == mix for r in check_rows) >= 30


def test_calibrated_error_within_goal_in_every_cell(tables):
    path, _, after = tables
    cells = after.drop(index="all", level="mix")
    medians = cells["median"]
    assert (medians <= MEDIAN_GOAL).all(), after
    gaps = CL100K_P90_GAPS if path == "cl100k" else {}
    for cell, p90 in cells["p90"].items():
        assert p90 <= gaps.get(cell, P90_GOAL), (path, cell, after)


def test_what_each_path_leaves(tables):
    path, _, after = tables
    if path == "own":  # own encodings leave only template tokens to fit
        for family in ("gpt-4o", "qwen3", "llama3"):
            assert after.loc[(family, "all"), "p90"] <= 0.5, after.loc[family]
    else:  # the known gap is real: when it closes, drop it from CL100K_P90_GAPS
        for cell in CL100K_P90_GAPS:
            assert after.loc[cell, "p90"] > P90_GOAL, after.loc[cell[0]]


def test_uncalibrated_errors_are_what_the_data_says(tables):
    path, before, after = tables
    # gpt-4 is counted exactly by the cookbook rule our defaults reproduce.
    assert before.loc[("gpt-4", "all"), "p90"] == 0
    assert after.loc[("gpt-4", "all"), "p90"] <= 0.01
    for family in ("gpt-4o", "llama3", "qwen3") if path == "cl100k" else ():
        # cl100k over-counts Chinese for every other family by a third or more ...
        assert before.loc[(family, "zh"), "median"] > 25
        # ... and calibration removes most of it in every mix.
        for mix in calibrate.MIXES:
            assert after.loc[(family, mix), "p90"] < before.loc[(family, mix), "p90"] or \
                before.loc[(family, mix), "p90"] < 2.5
    if path == "own":  # the own encoding leaves only template overheads: small before, ~0 after
        assert before.loc[("gpt-4o", "all"), "p90"] == 0  # o200k + the cookbook rule is exact
        assert before.loc[("qwen3", "zh"), "median"] < 2 and before.loc[("llama3", "zh"), "median"] < 2


def test_fit_records_what_it_was_fitted_on(fitted):
    path, by_family = fitted
    calibration, _ = by_family["qwen3"]
    method = "quicktok:qwen3" if path == "own" else "tiktoken:cl100k_base"
    assert calibration.fitted_on.startswith("calibration.jsonl: ")
    assert f"; {method}; " in calibration.fitted_on
    assert calibration.encoding == method.split(":")[1]
    assert calibration.per_image < 1  # Qwen3 here is text-only: image parts are dropped
    assert 3 <= calibration.per_message <= 5  # ChatML: <|im_start|>, role, \n, <|im_end|>, \n
    assert calibration.completion_expected and calibration.completion_expected > 200
    assert 0.5 < calibration.completion_scale < 1.2
    assert by_family["gpt-4o"][0].per_image == pytest.approx(85, abs=2)  # OpenAI's low-detail image price
    # Own encodings need none of the script features, so estimates skip computing them.
    for family in ("qwen3", "gpt-4o", "llama3"):
        assert needs_detail(by_family[family][0]) == (path == "cl100k"), family
    assert not needs_detail(by_family["gpt-4"][0])


def test_fit_family_gives_a_cl100k_twin(split_rows):
    if not _quicktok_installed():
        missing_service("quicktok-v1")
    calibration, twin = calibrate.fit_family(split_rows[0], "qwen3", source="calibration.jsonl")
    assert calibration.encoding == "qwen3" and twin.encoding == "cl100k_base"
    assert twin.han_tokens != 0 and calibration.han_tokens == 0
    assert calibrate.fit_family(split_rows[0], "gpt-4")[1] is None  # already on cl100k_base


def test_fit_refuses_samples_of_different_tokenizers():
    rows = [calibrate.Sample(f"s{i}", "en", Features(tokens=10 + i, messages=1), 20 + i, 0, 0,
                             "tiktoken:cl100k_base" if i % 2 else "quicktok:qwen3") for i in range(40)]
    with pytest.raises(ValueError, match="different tokenizers"):
        calibrate.fit(rows)


def test_fit_keeps_previous_values_for_features_never_seen():
    sample_rows = [calibrate.Sample(f"s{i}", "en", Features(tokens=10 * i + 5, messages=1 + i % 3), 0, 0, 0, "t")
                   for i in range(40)]
    exact = [calibrate.Sample(s.id, s.mix, s.features, 7 + s.features.tokens * 2 + 4 * s.features.messages,
                              50, 25, s.method) for s in sample_rows]
    previous = Calibration(per_image=170, webui_overhead=1234)
    calibration = calibrate.fit(exact, previous=previous)
    assert calibration.tokens == pytest.approx(2, abs=1e-3)
    assert calibration.per_message == pytest.approx(4, abs=1e-2)
    assert calibration.overhead == pytest.approx(7, abs=0.05)
    assert calibration.per_image == 170 and calibration.webui_overhead == 1234
    assert calibration.completion_scale == pytest.approx(2.0) and calibration.completion_expected == 50
    assert all(apply_calibration(s.features, calibration) == s.prompt for s in exact)


def test_fit_refuses_too_few_samples():
    with pytest.raises(ValueError, match="at least"):
        calibrate.fit([calibrate.Sample("a", "en", Features(tokens=3), 5, 1, 1, "t")])


def test_error_table_has_median_and_p90_per_family_and_mix():
    rows = [calibrate.Sample(f"s{i}", "en" if i % 2 else "zh", Features(tokens=100), 100 + i, 0, 0, "t")
            for i in range(10)]
    table = calibrate.error_table(calibrate.errors(rows, Calibration(overhead=0, per_message=0), "x"))
    assert list(table["mix"]) == ["en", "zh", "all"]
    en = table.set_index("mix").loc["en"]
    assert en["rows"] == 5 and en["median"] == pytest.approx(5 / 105 * 100)


def test_load_conversations_names_file_and_line(tmp_path):
    path = tmp_path / "cal.jsonl"
    good = {"id": "a", "mix": "en", "messages": [{"role": "user", "content": "hi"}], "usage": {}}
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"cal\.jsonl, line 2: not valid JSON"):
        calibrate.load_conversations(path)
    path.write_text(json.dumps({**good, "messages": []}) + "\n")
    with pytest.raises(ValueError, match="line 1: conversation a: 'messages'"):
        calibrate.load_conversations(path)
    with pytest.raises(ValueError, match="cannot read calibration file"):
        calibrate.load_conversations(tmp_path / "missing.jsonl")


def test_samples_need_usage_for_the_family(split_rows):
    with pytest.raises(ValueError, match="no conversation has usage for model family 'mistral'"):
        calibrate.samples(split_rows[1][:5], "mistral")
    bad = [{**split_rows[1][0], "usage": {"gpt-4": {"prompt_tokens": "many"}}}]
    with pytest.raises(ValueError, match=r"usage\.gpt-4\.prompt_tokens"):
        calibrate.samples(bad, "gpt-4")


# -- the features calibration relies on (tokenlimit_core.estimate), against slow references

ALPHABET = "abc XYZ 019 .,;\n\t你好世界的。，！（）こんにちはカタカナ안녕하세요привет éüñßçØ²³ĀŁ€™😀\u3400\ud7a3"


def _reference(text: str) -> dict:
    import re

    def count(pattern: str) -> int:
        return len(re.findall(pattern, text))

    return {"han_core": count(r"[\u4000-\u9fff]"), "cjk_punct": count(r"[\u3000-\u303f\uff00-\uff7f]"),
            "kana": count(r"[\u3040-\u30ff]"), "hangul": count(r"[\ua000-\udfff]"),
            "cyrillic": count(r"[\u0400-\u04ff]"), "latin_ext": count(r"[\u00c0-\u027f]"),
            "non_ascii": count(r"[^\x00-\x7f]"), "digits": count(r"[0-9]"), "space_han": count(r" [\u4000-\u9fff]")}


def test_script_counts_match_character_classes():
    from hypothesis import given, settings, strategies as st

    from tokenlimit_core.estimate import script_counts

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=ALPHABET, max_size=80))
    def check(text):
        han, kana_hangul, cyrillic, cjk_punct, hangul, latin_ext, non_ascii, digits, space_han = script_counts(text)
        ref = _reference(text)
        fullwidth_rest = len([c for c in text if "\uff80" <= c <= "\uffff"])
        assert han == ref["han_core"] + ref["cjk_punct"] + fullwidth_rest
        assert (cjk_punct, hangul, cyrillic, latin_ext, non_ascii, digits, space_han) == (
            ref["cjk_punct"], ref["hangul"], ref["cyrillic"], ref["latin_ext"], ref["non_ascii"], ref["digits"],
            ref["space_han"])
        assert kana_hangul == ref["kana"] + ref["hangul"]

    check()


def test_token_kinds_match_decoded_tokens():
    from hypothesis import given, settings, strategies as st

    from tokenlimit_core.estimate import Tokenizer, token_kinds

    tokenizer = Tokenizer("cl100k_base")
    encoding = tokenizer._encoding()[0]
    if encoding is None:
        pytest.skip("no tiktoken encoding")
    classes = tokenizer.token_classes()

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet=ALPHABET, max_size=60))
    def check(text):
        ids = encoding.encode_ordinary(text)
        pieces = [encoding.decode_single_token_bytes(i) for i in ids]
        han = sum(any(0xE4 <= b <= 0xE9 for b in p) for p in pieces)
        other = sum(max(p) >= 0x80 for p in pieces if p) - han
        assert token_kinds(ids, classes) == (han, other)

    check()


def test_features_of_odd_text_never_fail():
    estimator = Estimator()
    for text in ("\ud800 lone surrogate 你", "", "x" * 300_000, "中" * 10, "1"):
        features, _ = estimator.features({"messages": [{"role": "user", "content": text}]}, "qwen3")
        assert features.messages == 1 and features.tokens >= 0
