"""cli: every subcommand end to end, exit codes 0 / 1 / 2, and never a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import uuid

import pytest

from tokenlimit_core import open_store
from tokenlimit_core.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def named() -> str:
    return f"memory://{uuid.uuid4().hex}"


def run(*args, env=None):
    """The CLI in a fresh process, as an admin runs it."""
    return subprocess.run([sys.executable, "-m", "tokenlimit_core", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8", **(env or {})})


@pytest.mark.parametrize("args", [
    [], ["frobnicate"], ["demo", "--users", "0"], ["demo", "--days", "many"], ["export", "--from", "2026-02-30"],
    ["export", "--format", "xlsx"], ["migrate"], ["import-seed"],
])
def test_bad_arguments_exit_2_with_usage(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_bad_arguments_in_a_real_process_show_usage_not_a_traceback():
    result = run("export", "--to", "yesterday")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "'yesterday' is not a day" in result.stderr
    assert "Traceback" not in result.stderr


def test_store_errors_exit_1_with_one_line(tmp_path):
    result = run("status", "--store", "ftp://user:hunter2@host/x")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "unknown scheme" in result.stderr
    assert "hunter2" not in result.stderr
    result = run("status", env={"TOKEN_LIMIT_STORE_URL": "", "TOKEN_LIMIT_RESET_HOUR": "25"})
    assert result.returncode == 1 and "TOKEN_LIMIT_RESET_HOUR" in result.stderr and "Traceback" not in result.stderr


def test_demo_then_status(capsys):
    url = named()
    assert main(["demo", "--store", url, "--users", "5", "--days", "2", "--seed", "1"]) == 0
    out = capsys.readouterr()
    assert "Simulated 2 days of traffic by 5 users" in out.out and "demo days" in out.err
    assert len(open_store(url).ledger(0, 1e11)) > 0
    assert main(["status", "--store", url, "--lang", "zh"]) == 0
    text = capsys.readouterr().out
    assert "策略版本 1" in text and "backend: memory" in text


def test_status_redacts_passwords(capsys):
    url = f"memory://admin:s3cret@{uuid.uuid4().hex}"
    assert main(["status", "--store", url]) == 0
    text = capsys.readouterr().out
    assert "s3cret" not in text and "***" in text and "policy: none yet" in text


def test_import_seed_reports_and_is_idempotent(tmp_path, capsys):
    path = tmp_path / "usage.json"
    path.write_text(json.dumps({"u1": {"2026-12-01": {"total_tokens": 30, "models": {"gpt-4": 20}}}}))
    url = named()
    assert main(["import-seed", str(path), "--store", url]) == 0
    assert "Imported 2 rows (1 users, 1 days, 30 tokens)" in capsys.readouterr().out
    assert main(["import-seed", str(path), "--store", url, "--lang", "zh"]) == 0
    assert "已存在（跳过）2 行" in capsys.readouterr().out
    assert sum(r.tokens for r in open_store(url).daily_usage("2026-12-01", "2026-12-01")) == 30


def test_import_seed_malformed_file_exits_1_naming_file_and_key(tmp_path):
    path = tmp_path / "usage.json"
    path.write_text(json.dumps({"u1": {"2026-12-01": {"total_tokens": "lots"}}}))
    store_dir = tmp_path / "never-created"
    result = run("import-seed", str(path), "--store", f"tinydb://{store_dir}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and "'total_tokens'" in result.stderr
    assert not store_dir.exists()


def test_export_to_stdout_and_file(tmp_path, capsys):
    url = named()
    main(["demo", "--store", url, "--users", "4", "--days", "2"])
    capsys.readouterr()
    assert main(["export", "--store", url, "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(json.loads(line)["tokens"] >= 0 for line in lines)
    target = tmp_path / "ledger.csv"
    assert main(["export", "--store", url, "--what", "ledger", "-o", str(target)]) == 0
    assert "rows ->" in capsys.readouterr().err
    assert target.read_text().startswith("request_id,ts,day,user_id")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--store", url, "--from", "2026-12-05", "--to", "2026-12-01"])
    assert exit_info.value.code == 2 and "usage:" in capsys.readouterr().err
    assert main(["export", "--store", url, "-o", str(tmp_path / "missing" / "x.csv")]) == 1
    assert "missing" in capsys.readouterr().err


def test_export_into_a_closed_pipe_is_quiet(tmp_path):
    url = f"tinydb://{tmp_path / 'store'}"
    if run("demo", "--store", url, "--users", "3", "--days", "2").returncode != 0:
        pytest.skip("tinydb store not available yet")
    shell = subprocess.run(f"{sys.executable} -m tokenlimit_core export --what ledger --store {url} | head -1",
                           shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shell.stdout.startswith("request_id") and "Traceback" not in shell.stderr


def test_migrate_defaults_source_to_store(capsys):
    source, target = named(), named()
    main(["demo", "--store", source, "--users", "4", "--days", "2"])
    capsys.readouterr()
    assert main(["migrate", "--store", source, "--to", target]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Migrated {source} -> {target}: policy copied")
    assert main(["migrate", "--from", source, "--to", target]) == 0
    assert "policy unchanged" in capsys.readouterr().out
    assert main(["migrate", "--from", source, "--to", source]) == 1


def test_bundle_is_wired_lazily(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("tokenlimit_core.bundle")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "tokenlimit_core.bundle", fake)
    monkeypatch.setattr("tokenlimit_core.bundle", fake, raising=False)
    assert main(["bundle", "--check"]) == 7 and seen == [["--check"]]
    monkeypatch.setitem(sys.modules, "tokenlimit_core.bundle", None)
    monkeypatch.delattr("tokenlimit_core.bundle")
    assert main(["bundle"]) == 1
    assert "bundle.py is missing" in capsys.readouterr().err


def test_bundle_check_fails_on_stale_output(tmp_path):
    out = tmp_path / "filters"
    out.mkdir()
    assert run("bundle", "--check", "--out", str(out)).returncode != 0
    assert run("bundle", "--out", str(out)).returncode == 0
    assert run("bundle", "--check", "--out", str(out)).returncode == 0
    (out / sorted(os.listdir(out))[0]).write_text("# edited by hand\n")
    assert run("bundle", "--check", "--out", str(out)).returncode != 0


def test_demo_refuses_a_store_with_a_real_policy(capsys):
    from tokenlimit_core import Policy

    url = named()
    open_store(url).save_policy(Policy(roles={"user": 5}).to_json(), "admin")
    assert main(["demo", "--store", url, "--users", "3", "--days", "1"]) == 1
    assert "already holds a policy" in capsys.readouterr().err
    assert open_store(url).ledger(0, 1e11) == [] and open_store(url).policy_revision() == 1
    assert main(["demo", "--store", url, "--users", "3", "--days", "1", "--force"]) == 0
    assert main(["demo", "--store", url, "--users", "3", "--days", "1"]) == 0  # a demo store may be refilled
