"""The bundler: filters/ is current, each file stands alone, and Open WebUI cannot corrupt it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURES, ROOT
from tokenlimit_core import bundle

FILTERS = ROOT / "filters"
RUNNER = ROOT / "tests" / "e2e" / "run_bundle.py"


def _isolated(kind: str, path, tmp_path, stores=()) -> dict:
    """Run the bundled file in a fresh interpreter, cwd elsewhere, no PYTHONPATH, project blocked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TOKEN_LIMIT_"))}
    env["DATA_DIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-I", str(RUNNER), kind, str(path), str(FIXTURES), *stores],
                          cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_committed_filters_are_current():
    assert bundle.main(["--check"]) == 0


def test_check_fails_when_a_file_is_stale(tmp_path):
    assert bundle.main(["--out", str(tmp_path)]) == 0
    assert bundle.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "tokenlimit_pipeline.py"
    stale.write_text(stale.read_text() + "# edited by hand\n")
    assert bundle.main(["--check", "--out", str(tmp_path)]) == 1
    (tmp_path / "tokenlimit_function.py").unlink()
    assert bundle.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize("command", [["tokenlimit_core.bundle"], ["tokenlimit_core", "bundle"]])
def test_check_runs_as_a_command(command, tmp_path):
    done = subprocess.run([sys.executable, "-m", *command, "--check"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    stale = subprocess.run([sys.executable, "-m", *command, "--check", "--out", str(tmp_path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert stale.returncode == 1 and "stale" in stale.stderr


@pytest.mark.parametrize("name", ["tokenlimit_function.py", "tokenlimit_pipeline.py"])
def test_front_matter_both_hosts_read(name):
    text = (FILTERS / name).read_text()
    assert text.startswith('"""\n')
    head = text[4:text.index('"""', 4)]
    fields = dict(line.split(": ", 1) for line in head.strip().splitlines())
    assert {"title", "version", "description", "requirements"} <= fields.keys()
    requirements = [r.strip() for r in fields["requirements"].split(",")]
    assert {"tinydb", "tiktoken"} <= set(requirements)
    assert "redis" not in requirements and "pydantic" not in requirements


@pytest.mark.parametrize("name", ["tokenlimit_function.py", "tokenlimit_pipeline.py"])
def test_no_substring_open_webui_rewrites(name):
    text = (FILTERS / name).read_text()
    for needle in bundle.FORBIDDEN:
        assert needle not in text


def test_a_forbidden_substring_is_refused_with_its_line():
    with pytest.raises(bundle.BundleError, match=r"x\.py line 3 contains 'from utils'"):
        bundle.check_text('"""\ntitle: x\nfrom utils import y\n"""\n', "x.py")


def test_bundle_embeds_exact_sources_and_skips_the_other_adapter():
    text = bundle.render(bundle.TARGETS[0])
    namespace: dict = {}
    head, _, _ = text.partition("\n# -- the import hook")
    exec(compile(head, "head", "exec"), namespace)
    sources = namespace["_SOURCES"]
    package = namespace["_PACKAGE"]
    assert "openwebui.pipeline" not in sources and "openwebui.function" in sources
    assert "cli" not in sources and "bundle" not in sources
    policy = (ROOT / "tokenlimit_core" / "policy.py").read_text()
    assert sources["policy"] == bundle._rewrite(policy, package)
    assert "tokenlimit_core.store.memory" not in sources["store"]


def test_literal_round_trips_awkward_sources():
    import ast

    for text in ["plain", "a '''b''' c", 'x = """y"""\n', "ends with \\", "both ''' and \"\"\"", "\\'''"]:
        assert ast.literal_eval(bundle._literal(text)) == text


@pytest.fixture(params=["memory", "tinydb", "redis"])
def bundle_stores(request, tmp_path):
    """(store URL, a second empty store URL, expected store class) per backend."""
    if request.param == "memory":
        return ("memory://big", "memory://small"), "MemoryStore"
    if request.param == "tinydb":
        return (f"tinydb://{tmp_path}/big", f"tinydb://{tmp_path}/small"), "TinyDBStore"
    server = request.getfixturevalue("redis_server")
    import redis

    for db in (14, 15):
        redis.Redis(port=server["port"], db=db).flushdb()
    return (f"{server['url']}/14", f"{server['url']}/15"), "RedisStore"


def test_function_file_works_alone_on_real_payloads(tmp_path, bundle_stores):
    stores, store_class = bundle_stores
    out = _isolated("function", FILTERS / "tokenlimit_function.py", tmp_path, stores)
    assert out["modules_from_project"] == []
    assert out["store_class"] == store_class
    assert out["api_nonstream_usage_info"] == {"daily_limit": 2000, "total_used": 40, "remaining": 1960,
                                               "current_request": 40}
    assert out["stream_options"] == {"include_usage": True}
    # The streamed reply reached the outlet without usage; the stream hook's final chunk supplied it.
    assert out["stream_usage_info"]["current_request"] == 40
    assert out["stream_usage_info"]["total_used"] == 80
    assert out["refusal"].startswith("请求过大") and "10" in out["refusal"]


def test_pipeline_file_works_alone_on_real_payloads(tmp_path, bundle_stores):
    stores, store_class = bundle_stores
    out = _isolated("pipeline", FILTERS / "tokenlimit_pipeline.py", tmp_path, stores)
    assert out["modules_from_project"] == []
    assert out["store_class"] == store_class
    assert (out["type"], out["pipelines"], out["priority"]) == ("filter", ["*"], 0)
    assert out["usage_info"] == {"daily_limit": 2000, "total_used": 40, "remaining": 1960, "current_request": 40}
    assert "too large" in out["refusal"] and "10 tokens per day" in out["refusal"]


def test_the_import_hook_serves_modules_and_data_files():
    import importlib
    import sys
    from importlib import resources

    from tokenlimit_core import bundle_importer

    package = f"_tokenlimit_probe_{os.getpid()}"
    sources = {"": "VALUE = 1\n", "sub": "", "sub.leaf": "from .. import VALUE\nDOUBLE = VALUE * 2\n"}
    bundle_importer._install(package, sources, {"", "sub"}, {"sub": {"script.lua": "return 1"}})
    bundle_importer._install(package, sources, {"", "sub"}, {})  # once per process
    try:
        assert sum(getattr(f, "package", None) == package for f in sys.meta_path) == 1
        assert importlib.import_module(package + ".sub.leaf").DOUBLE == 2
        folder = resources.files(package + ".sub")
        assert (folder / "script.lua").read_text() == "return 1"
        assert [p.name for p in folder.iterdir()] == ["script.lua"]
        with pytest.raises(FileNotFoundError):
            (folder / "missing.lua").read_text()
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "package", None) != package]
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]
