"""The notebooks' opener (notebooks/notebook_store.py): demo data when empty, a clear stop otherwise."""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import uuid

import pytest

from tokenlimit_core import Policy, open_store

_PATH = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "notebook_store.py"
_spec = importlib.util.spec_from_file_location("notebook_store", _PATH)
notebook_store = importlib.util.module_from_spec(_spec)
sys.modules["notebook_store"] = notebook_store
_spec.loader.exec_module(notebook_store)
NotebookStop = notebook_store.NotebookStop


def named_memory() -> str:
    return f"memory://{uuid.uuid4().hex}"


def test_empty_store_gets_demo_data_once_and_says_so(capsys):
    url = named_memory()
    opened = notebook_store.open_for_notebook(url, demo_users=4, demo_days=3, period_days=7)
    said = capsys.readouterr().out
    assert opened.demo and "now holds demo data" in said and "已填入演示数据" in said
    assert opened.policy == Policy.from_json(opened.store.load_policy().policy_json)
    assert opened.store.daily_usage(opened.first_day, opened.last_day)
    again = notebook_store.open_for_notebook(url, demo_users=4, demo_days=3, period_days=7)
    assert not again.demo and "demo data" not in capsys.readouterr().out


def test_empty_store_without_demo_stops():
    with pytest.raises(NotebookStop, match="DEMO_IF_EMPTY"):
        notebook_store.open_for_notebook(named_memory(), demo_if_empty=False)


def test_store_without_usage_in_the_period_stops_unless_usage_is_not_needed():
    url = named_memory()
    open_store(url).save_policy(Policy(roles={"user": 5}).to_json(), "admin")
    with pytest.raises(NotebookStop, match="PERIOD_DAYS"):
        notebook_store.open_for_notebook(url)
    opened = notebook_store.open_for_notebook(url, need_usage=False)
    assert opened.policy.roles == {"user": 5} and not opened.demo


def test_unknown_backend_stops_with_the_url_and_the_setting_without_traceback():
    with pytest.raises(NotebookStop) as caught:
        notebook_store.open_for_notebook("nosuchbackend:///x")
    lines = caught.value._render_traceback_()
    assert all(line.startswith("⛔ ") for line in lines)
    text = "\n".join(lines)
    assert "nosuchbackend:///x" in text and "STORE_URL" in text and "Traceback" not in text


def test_unreachable_store_message_hides_the_password():
    with pytest.raises(NotebookStop) as caught:
        notebook_store.open_for_notebook("redis://admin:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1" in str(caught.value)


def test_invalid_stored_policy_stops_and_names_the_revision():
    url = named_memory()
    open_store(url).save_policy('{"roles": {"user": -7}}', "someone")
    with pytest.raises(NotebookStop, match=r"\(revision 1\) is invalid: roles: .*-7"):
        notebook_store.open_for_notebook(url)
    open_store(url).save_policy("{not json", "someone")
    with pytest.raises(NotebookStop, match=r"\(revision 2\) is invalid"):
        notebook_store.open_for_notebook(url)


def test_period_must_be_positive():
    with pytest.raises(NotebookStop, match="PERIOD_DAYS"):
        notebook_store.open_for_notebook(named_memory(), period_days=0)


def test_output_folder_is_created_or_explained(tmp_path, monkeypatch):
    folder = notebook_store.output_folder(str(tmp_path / "a" / "b"))
    assert folder.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotebookStop, match="OUT_DIR"):
        notebook_store.output_folder(str(tmp_path / "file" / "sub"))
    monkeypatch.setattr(notebook_store, "REPO", tmp_path)
    assert notebook_store.output_folder("out") == tmp_path / "notebooks" / "out"
