"""seed_import: the original filter's usage file becomes daily rollups, once, and bad files are named."""
from __future__ import annotations

import json

import pytest

from tokenlimit_core import open_store
from tokenlimit_core.seed_import import UNKNOWN_MODEL, SeedFileError, import_seed, read
from tokenlimit_core.store import DailyUsage

USAGE = {
    "user123": {
        "2026-11-30": {"total_tokens": 1500, "models": {"gpt-4": 1000, "llama3:8b": 500}},
        "2026-12-01": {"total_tokens": 900, "models": {"gpt-4": 600}},
    },
    "王芳": {"2026-12-01": {"total_tokens": 42, "models": {}}},
}


def write(tmp_path, data, name="token_usage.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_import_writes_daily_rows_with_unknown_model(tmp_path, store):
    result = import_seed(store, write(tmp_path, USAGE))
    assert (result.users, result.days, result.rows, result.tokens) == (2, 2, 5, 2442)
    rows = {(r.day, r.user_id, r.model): r.tokens for r in store.daily_usage("2026-11-01", "2026-12-31")}
    assert rows == {("2026-11-30", "user123", "gpt-4"): 1000, ("2026-11-30", "user123", "llama3:8b"): 500,
                    ("2026-12-01", "user123", "gpt-4"): 600, ("2026-12-01", "user123", UNKNOWN_MODEL): 300,
                    ("2026-12-01", "王芳", UNKNOWN_MODEL): 42}
    assert store.load_policy() is None  # usage only
    assert store.audit_log()[0].action == "import_seed"


def test_importing_twice_imports_nothing_twice(tmp_path):
    store = open_store("memory://")
    path = write(tmp_path, USAGE)
    import_seed(store, path)
    before = store.daily_usage("2026-11-01", "2026-12-31")
    again = import_seed(store, path)
    assert (again.rows, again.tokens, again.already_present, again.conflicts) == (0, 0, 5, 0)
    assert store.daily_usage("2026-11-01", "2026-12-31") == before


def test_live_usage_in_the_store_is_never_overwritten(tmp_path):
    store = open_store("memory://")
    live = DailyUsage("2026-12-01", "user123", "gpt-4", 7777, 7000, 777, 3)
    store.put_history(daily=[live])
    result = import_seed(store, write(tmp_path, USAGE))
    assert result.conflicts == 1 and result.rows == 4
    assert live in store.daily_usage("2026-12-01", "2026-12-01")


def test_models_summing_past_total_are_reported_not_invented(tmp_path):
    store = open_store("memory://")
    data = {"u": {"2026-12-01": {"total_tokens": 10, "models": {"gpt-4": 25}}}}
    result = import_seed(store, write(tmp_path, data))
    assert result.models_exceed_total == ["u/2026-12-01"]
    assert [(r.model, r.tokens) for r in store.daily_usage("2026-12-01", "2026-12-01")] == [("gpt-4", 25)]


@pytest.mark.parametrize("data, named", [
    ("{not json", "line 1"),
    ([1, 2], "expected an object"),
    ({"u1": {"2026-13-01": {"total_tokens": 1}}}, "'2026-13-01'"),
    ({"u1": {"yesterday": {"total_tokens": 1}}}, "'yesterday'"),
    ({"u1": {"2026-12-01": {"total_tokens": -5}}}, "'total_tokens'"),
    ({"u1": {"2026-12-01": {"total_tokens": "many"}}}, "'total_tokens'"),
    ({"u1": {"2026-12-01": {"total_tokens": 5, "models": {"gpt-4": 1.5}}}}, "model 'gpt-4'"),
    ({"u1": {"2026-12-01": {"total_tokens": 5, "models": [1]}}}, "'models'"),
    ({"u1": {"2026-12-01": 12}}, "day '2026-12-01'"),
    ({"u1": []}, "user 'u1'"),
    ({" ": {}}, "empty user id"),
])
def test_malformed_files_name_the_file_and_key_and_import_nothing(tmp_path, data, named):
    store = open_store("memory://")
    good_then_bad = {"good": USAGE["user123"], **data} if isinstance(data, dict) else data
    path = write(tmp_path, good_then_bad)
    with pytest.raises(SeedFileError) as err:
        import_seed(store, path)
    assert str(path) in str(err.value) and named in str(err.value)
    assert store.daily_usage("2000-01-01", "2100-01-01") == []


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(SeedFileError, match="cannot read"):
        read(tmp_path / "nope.json")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SeedFileError, match="bin.json"):
        read(binary)
