"""Starts the slim Open WebUI installed by .ci/setup.d/openwebui.sh and talks to its HTTP API."""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Optional

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "openwebui-venv"
VERSION = "0.12.4"


def installed() -> bool:
    """Whether the Open WebUI venv exists and holds the expected version."""
    return (VENV / "bin" / "open-webui").exists() and any(
        (VENV / "lib").glob(f"python3*/site-packages/open_webui-{VERSION}.dist-info"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpError(RuntimeError):
    """A non-2xx answer, with its status and body."""

    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status, self.body = status, body


class OpenWebUI:
    """One Open WebUI process on a free loopback port with its own DATA_DIR."""

    def __init__(self, data_dir: pathlib.Path, backend_url: str, extra_env: Optional[dict] = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "openwebui.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKEN_LIMIT_", "PYTHON"))}
        env.update({"USE_SLIM_DOCKER": "true", "OFFLINE_MODE": "true", "ENABLE_OLLAMA_API": "false",
                    "BYPASS_MODEL_ACCESS_CONTROL": "true", "DATA_DIR": str(data_dir),
                    "OPENAI_API_BASE_URL": backend_url, "OPENAI_API_KEY": "x",
                    "WEBUI_SECRET_KEY": "tokenlimit-e2e-secret", "ENABLE_SIGNUP": "true",
                    "HF_HUB_OFFLINE": "1", "ENABLE_VERSION_UPDATE_CHECK": "false",
                    "ENABLE_TITLE_GENERATION": "false", "ENABLE_TAGS_GENERATION": "false",
                    "ENABLE_FOLLOW_UP_GENERATION": "false"})
        env.update(extra_env or {})
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(VENV / "bin" / "open-webui"), "serve", "--host", "127.0.0.1",
                                      "--port", str(self.port)], cwd=str(data_dir), env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds until /health answers; raises with the log tail when it does not."""
        start = time.time()
        while time.time() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Open WebUI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return time.time() - start
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"Open WebUI not healthy after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def request(self, method: str, path: str, payload: Any = None, token: Optional[str] = None,
                timeout: float = 60) -> tuple[int, str]:
        """One HTTP call; returns (status, body text) for any status."""
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def json(self, method: str, path: str, payload: Any = None, token: Optional[str] = None) -> Any:
        """One HTTP call that must succeed; returns the decoded JSON."""
        status, body = self.request(method, path, payload, token)
        if not 200 <= status < 300:
            raise HttpError(status, body)
        return json.loads(body) if body else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class PipelinesServer:
    """tests/e2e/pipelines_server.py on a free loopback port, run by Open WebUI's Python (fastapi, uvicorn)."""

    def __init__(self, folder: pathlib.Path, extra_env: Optional[dict] = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.log_path = folder.parent / f"pipelines-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKEN_LIMIT_", "PYTHON"))}
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        script = pathlib.Path(__file__).with_name("pipelines_server.py")
        # -I: the project is not importable; the filter file must stand alone.
        self.proc = subprocess.Popen([str(VENV / "bin" / "python"), "-I", str(script), str(folder), str(self.port)],
                                     cwd=str(folder.parent), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.client = OpenWebUI.__new__(OpenWebUI)  # reuse the HTTP helpers
        self.client.url = self.url

    def wait_ready(self, timeout: float = 60) -> float:
        start = time.time()
        while time.time() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pipelines server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as r:
                    if r.status == 200:
                        return time.time() - start
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"pipelines server not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
