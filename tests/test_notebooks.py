"""Every notebook runs top to bottom against a fresh store; committed notebooks carry no outputs.

Notebooks run with nbclient on a kernel spec made here for this interpreter
(the venv), so a fresh CI machine needs no `ipykernel install`. Parameters are
injected after the cell tagged `parameters`, as papermill does.
"""
from __future__ import annotations

import json
import pathlib
import re
import sys
import time

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tokenlimit_core import Policy, open_store

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01_configure", "02_audit_usage", "03_calibrate_estimation", "04_policy_what_if"]
KERNEL = "tokenlimit-test"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def kernel_dirs(tmp_path_factory) -> list[str]:
    """A kernel spec that starts ipykernel with this very interpreter."""
    folder = tmp_path_factory.mktemp("kernels") / KERNEL
    folder.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "tokenlimit (test)", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec))
    return [str(folder.parent)]


def store_url_for(tmp_path: pathlib.Path) -> str:
    """A fresh TinyDB store (the default backend), which the test can reopen after the kernel is gone."""
    return f"tinydb://{tmp_path}/store"


def run(name: str, kernel_dirs: list[str], tmp_path: pathlib.Path, **params) -> nbformat.NotebookNode:
    """Execute one notebook with parameters injected; raises CellExecutionError on a failing cell."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"{key} = {value!r}" for key, value in params.items()]
    injected = nbformat.v4.new_code_cell("# Injected by tests/test_notebooks.py\n" + "\n".join(lines))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(cwd=str(NOTEBOOKS))
    return nb


def text_of(nb: nbformat.NotebookNode) -> str:
    """All text output of an executed notebook."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_on_a_fresh_store(name, kernel_dirs, tmp_path):
    url = store_url_for(tmp_path)
    params = {"STORE_URL": url, "OUT_DIR": str(tmp_path / "out")}
    if name == "04_policy_what_if":
        params["APPLY"] = "A"
    started = time.perf_counter()
    nb = run(name, kernel_dirs, tmp_path, **params)
    TIMINGS[name] = time.perf_counter() - started
    print(f"\n{name}: {TIMINGS[name]:.1f} s")
    output = text_of(nb)
    assert "now holds demo data" in output  # the empty store was filled, and the notebook said so
    store = open_store(url)
    try:
        record = store.load_policy()
        if name == "01_configure":
            assert record.actor == "notebook:01_configure" and Policy.from_json(record.policy_json).timezone
        if name == "02_audit_usage":
            exported = sorted(p.name for p in (tmp_path / "out").glob("*.csv"))
            assert any(n.startswith("usage_by_user") for n in exported), exported
        if name == "03_calibrate_estimation":
            assert record.actor == "notebook:03_calibrate_estimation"
            assert Policy.from_json(record.policy_json).calibration
        if name == "04_policy_what_if":
            assert record.actor == "notebook:04_policy_what_if"
    finally:
        store.close()


def test_configure_works_before_any_traffic(kernel_dirs, tmp_path):
    url = store_url_for(tmp_path)
    store = open_store(url)
    store.save_policy(Policy(roles={"user": 5000}).to_json(), "seed")  # as a freshly installed filter leaves it
    store.close()
    nb = run("01_configure", kernel_dirs, tmp_path, STORE_URL=url)
    assert "No users yet" in text_of(nb) and "demo data" not in text_of(nb)
    store = open_store(url)
    try:
        assert store.load_policy().actor == "notebook:01_configure" and not store.users()
    finally:
        store.close()


@pytest.mark.parametrize("name", NAMES)
def test_unusable_store_stops_with_a_clear_message(name, kernel_dirs, tmp_path):
    with pytest.raises(CellExecutionError) as caught:
        run(name, kernel_dirs, tmp_path, STORE_URL="nosuchbackend:///x")
    error = caught.value
    assert error.ename == "NotebookStop"
    assert "nosuchbackend:///x" in error.traceback and "STORE_URL" in error.traceback
    assert "Traceback" not in error.traceback and "File \"" not in error.traceback


def test_corrupt_store_is_reported_and_left_untouched(kernel_dirs, tmp_path):
    url = store_url_for(tmp_path)
    store = open_store(url)
    store.save_policy(Policy().to_json(), "test")
    store.close()
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.suffix == ".json"]
    assert files, "the tinydb store keeps JSON files"
    for path in files:
        path.write_text("{ not json")
    before = {p: p.read_bytes() for p in files}
    with pytest.raises(CellExecutionError) as caught:
        run("02_audit_usage", kernel_dirs, tmp_path, STORE_URL=url)
    assert caught.value.ename == "NotebookStop" and "Traceback" not in caught.value.traceback
    assert any(str(p) in caught.value.traceback for p in files), "the message names the corrupt file"
    assert {p: p.read_bytes() for p in files} == before


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_clean_and_parametrized(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "one cell tagged 'parameters', the first code cell"
    assert re.search(r"^STORE_URL = ", tagged[0].source, re.M)
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("#")]
    assert len(headings) >= 3 and all(re.search(r"[\u4e00-\u9fff]", h) for h in headings), \
        "every heading in English and Chinese"
