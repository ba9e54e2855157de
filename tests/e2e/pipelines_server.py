"""A minimal stand-in for the Open WebUI Pipelines server, serving filter files the way it does.

The real server (open-webui/pipelines) is not on PyPI, so this reproduces the parts a
filter meets: each `*.py` in the pipelines folder is imported by file location, its
`valves.json` is merged over the defaults, `on_startup()` is awaited, `/models` lists
filters with their `pipelines` and `priority`, `POST /{id}/filter/inlet|outlet` take
`{"user": ..., "body": ...}` and answer 500 `{"detail": str(exc)}` when the filter
raises, and `POST /{id}/valves/update` replaces all valves, saves them and awaits
`on_valves_updated()`. Run with a Python that has fastapi and uvicorn:

    python pipelines_server.py PIPELINES_DIR PORT
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict

FOLDER = sys.argv[1] if len(sys.argv) > 1 else "pipelines"
MODULES: dict = {}


class FilterForm(BaseModel):
    body: dict
    user: Optional[dict] = None
    model_config = ConfigDict(extra="allow")


def load(path: str):
    """Import one filter file by location and instantiate its Pipeline; a failure moves it to failed/."""
    name = os.path.basename(path)[:-3]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.Pipeline()
    except Exception as exc:  # the real server moves the file aside and carries on
        failed = os.path.join(FOLDER, "failed")
        os.makedirs(failed, exist_ok=True)
        os.rename(path, os.path.join(failed, os.path.basename(path)))
        print(f"failed to load {name}: {exc!r}", flush=True)
        return None


async def startup():
    for filename in sorted(os.listdir(FOLDER)):
        if not filename.endswith(".py"):
            continue
        pipeline = load(os.path.join(FOLDER, filename))
        if pipeline is None:
            continue
        pid = filename[:-3]
        saved_path = os.path.join(FOLDER, pid, "valves.json")
        os.makedirs(os.path.dirname(saved_path), exist_ok=True)
        saved = json.load(open(saved_path)) if os.path.exists(saved_path) else {}
        if hasattr(pipeline, "valves"):
            pipeline.valves = pipeline.valves.__class__(**{**pipeline.valves.model_dump(), **saved})
        MODULES[pid] = pipeline
    for pipeline in MODULES.values():
        if hasattr(pipeline, "on_startup"):
            await pipeline.on_startup()  # an exception here stops the whole server, as in the real one


@asynccontextmanager
async def lifespan(app):
    await startup()
    yield
    for pipeline in MODULES.values():
        if hasattr(pipeline, "on_shutdown"):
            await pipeline.on_shutdown()


app = FastAPI(lifespan=lifespan)


@app.get("/")
@app.get("/v1")
async def status():
    return {"status": True}


@app.get("/models")
@app.get("/v1/models")
async def models():
    data = []
    for pid, pipeline in MODULES.items():
        kind = getattr(pipeline, "type", "pipe")
        entry = {"type": kind, "valves": hasattr(pipeline, "valves")}
        if kind == "filter":
            entry.update(pipelines=pipeline.valves.pipelines, priority=pipeline.valves.priority)
        data.append({"id": pid, "name": getattr(pipeline, "name", pid), "object": "model",
                     "created": int(time.time()), "owned_by": "openai", "pipeline": entry})
    return {"data": data, "object": "list", "pipelines": True}


def _pipeline(pid: str):
    if pid not in MODULES:
        raise HTTPException(404, f"Filter {pid} not found")
    return MODULES[pid]


@app.get("/{pid}/valves")
@app.get("/v1/{pid}/valves")
async def get_valves(pid: str):
    return _pipeline(pid).valves


@app.post("/{pid}/valves/update")
@app.post("/v1/{pid}/valves/update")
async def update_valves(pid: str, form_data: dict):
    pipeline = _pipeline(pid)
    try:
        pipeline.valves = pipeline.valves.__class__(**form_data)  # fields left out return to defaults
        with open(os.path.join(FOLDER, pid, "valves.json"), "w") as fh:
            json.dump(pipeline.valves.model_dump(), fh)
        if hasattr(pipeline, "on_valves_updated"):
            await pipeline.on_valves_updated()
    except Exception as exc:
        raise HTTPException(500, str(exc))
    return pipeline.valves


@app.post("/{pid}/filter/inlet")
@app.post("/v1/{pid}/filter/inlet")
async def inlet(pid: str, form_data: FilterForm):
    pipeline = _pipeline(pid)
    try:
        return await pipeline.inlet(form_data.body, form_data.user)
    except Exception as exc:
        raise HTTPException(500, str(exc))


@app.post("/{pid}/filter/outlet")
@app.post("/v1/{pid}/filter/outlet")
async def outlet(pid: str, form_data: FilterForm):
    pipeline = _pipeline(pid)
    try:
        return await pipeline.outlet(form_data.body, form_data.user)
    except Exception as exc:
        raise HTTPException(500, str(exc))


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
