"""Loads one bundled filter the way its host does and runs it on the captured payloads; prints JSON.

Run in a fresh interpreter with the project not importable:
    python -I run_bundle.py {function|pipeline} FILE FIXTURES_DIR [STORE_URL SMALL_STORE_URL]
`tokenlimit_core` is blocked outright (an editable install would otherwise make it importable),
so everything the filter does comes from the file alone.
"""
from __future__ import annotations

import asyncio
import copy
import importlib.abc
import importlib.util
import json
import pathlib
import sys
import types


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "tokenlimit_core" or fullname.startswith("tokenlimit_core."):
            raise ImportError(f"{fullname} is blocked: the bundle must not need the project")
        return None


sys.meta_path.insert(0, _Block())


def load_like_open_webui(path: pathlib.Path):
    """utils/plugin.py load_function_module_by_id: rewrite imports, exec in a throwaway module."""
    content = path.read_text()
    for old, new in {"from utils": "from open_webui.utils", "from apps": "from open_webui.apps",
                     "from main": "from open_webui.main", "from config": "from open_webui.config"}.items():
        content = content.replace(old, new)
    module = types.ModuleType("function_tokenlimit_probe")
    sys.modules[module.__name__] = module
    try:
        exec(content, module.__dict__)
    finally:
        sys.modules.pop(module.__name__, None)
    return module.Filter()


def load_like_pipelines(path: pathlib.Path):
    """The Pipelines server's load_module_from_path: import the file by location."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Pipeline()


def fixture(folder: pathlib.Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


async def run_function(path: pathlib.Path, fixtures: pathlib.Path, big: str, small: str) -> dict:
    flt = load_like_open_webui(path)
    flt.valves = flt.Valves(store_url=big, daily_token_limits='{"user": 2000}')
    out: dict = {}
    inlet = fixture(fixtures, "function_inlet_nonstream.json")["params"]
    outlet = fixture(fixtures, "function_outlet_nonstream.json")["params"]
    meta = copy.deepcopy(inlet["__metadata__"])
    await flt.inlet(copy.deepcopy(inlet["body"]), __user__=inlet["__user__"], __metadata__=meta,
                    __model__=inlet["__model__"])
    body = await flt.outlet(copy.deepcopy(outlet["body"]), __user__=outlet["__user__"], __metadata__=meta,
                            __model__=outlet["__model__"])
    out["api_nonstream_usage_info"] = body.get("usage_info")
    out["store_class"] = type(flt._engines.get(flt.valves).store).__name__

    inlet = fixture(fixtures, "function_inlet_stream.json")["params"]
    meta = copy.deepcopy(inlet["__metadata__"])
    sent = await flt.inlet(copy.deepcopy(inlet["body"]), __user__=inlet["__user__"], __metadata__=meta,
                           __model__=inlet["__model__"])
    out["stream_options"] = sent.get("stream_options")
    for event in fixture(fixtures, "function_stream_events_include_usage.json").get("events", []):
        flt.stream(event, __metadata__=meta)
    outlet = fixture(fixtures, "function_outlet_stream.json")["params"]
    body = await flt.outlet(copy.deepcopy(outlet["body"]), __user__=outlet["__user__"], __metadata__=meta,
                            __model__=outlet["__model__"])
    out["stream_usage_info"] = body.get("usage_info")

    # Limits live in the store (valves only seed an empty one): a fresh store for the small limit.
    flt.valves = flt.Valves(store_url=small, daily_token_limits='{"user": 10}',
                            language="zh")
    inlet = fixture(fixtures, "function_inlet_nonstream.json")["params"]
    try:
        await flt.inlet(copy.deepcopy(inlet["body"]), __user__=inlet["__user__"],
                        __metadata__=copy.deepcopy(inlet["__metadata__"]), __model__=inlet["__model__"])
        out["refusal"] = None
    except Exception as exc:
        out["refusal"] = str(exc)
    out["modules_from_project"] = sorted(m for m in sys.modules if m.startswith("tokenlimit_core"))
    return out


async def run_pipeline(path: pathlib.Path, fixtures: pathlib.Path, big: str, small: str) -> dict:
    pipe = load_like_pipelines(path)
    out: dict = {"type": pipe.type, "pipelines": pipe.valves.pipelines, "priority": pipe.valves.priority}
    pipe.valves = pipe.Valves(store_url=big, daily_token_limits='{"user": 2000}')
    await pipe.on_valves_updated()
    await pipe.on_startup()
    request = fixture(fixtures, "pipeline_inlet_request.json")["request"]["body"]
    await pipe.inlet(copy.deepcopy(request["body"]), copy.deepcopy(request["user"]))
    outlet = fixture(fixtures, "pipeline_outlet_request.json")["request"]["body"]
    body = await pipe.outlet(copy.deepcopy(outlet["body"]), copy.deepcopy(outlet["user"]))
    out["usage_info"] = body.get("usage_info")
    out["store_class"] = type(pipe._engines.get(pipe.valves).store).__name__
    pipe.valves = pipe.Valves(store_url=small, daily_token_limits='{"user": 10}')
    await pipe.on_valves_updated()
    try:
        await pipe.inlet(copy.deepcopy(request["body"]), copy.deepcopy(request["user"]))
        out["refusal"] = None
    except Exception as exc:
        out["refusal"] = str(exc)
    out["modules_from_project"] = sorted(m for m in sys.modules if m.startswith("tokenlimit_core"))
    return out


def main() -> None:
    kind, path, fixtures = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    big, small = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("memory://big", "memory://small")
    runner = run_function if kind == "function" else run_pipeline
    out = asyncio.run(runner(path, fixtures, big, small))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
