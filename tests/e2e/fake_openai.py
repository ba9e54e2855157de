"""A small OpenAI-compatible backend on 127.0.0.1 that reports usage, for end-to-end tests.

Counts are fixed formulas, so tests can predict them: prompt_tokens = Σ(len(text)//4 + 3)
over messages + len(tools JSON)//4, completion_tokens = len(reply)//4 + 1. Streamed replies
end with a usage chunk only when the request asks for `stream_options.include_usage`.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = ("gpt-4o-mini", "llama3:8b")


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def usage_for(request: dict, reply: str) -> dict:
    """The usage this backend reports for a request and its reply."""
    prompt = sum(len(_text(m.get("content"))) // 4 + 3 for m in request.get("messages") or [])
    if request.get("tools"):
        prompt += len(json.dumps(request["tools"])) // 4
    completion = len(reply) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def reply_for(request: dict) -> str:
    messages = request.get("messages") or [{}]
    return f"Deterministic reply from {request.get('model')}: you said {_text(messages[-1].get('content'))[:60]!r}."


class FakeOpenAI:
    """Serves /models and /chat/completions on a free loopback port; records every request."""

    def __init__(self):
        self.requests: list[dict] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake-openai"}
                        for m in MODELS]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": "not found"})
                    return
                backend.requests.append(request)
                reply = reply_for(request)
                usage = usage_for(request, reply)
                created = int(time.time())
                if not request.get("stream"):
                    self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": created,
                                     "model": request.get("model"), "usage": usage,
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": reply}}]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                        "model": request.get("model")}
                words = reply.split(" ")
                chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
                chunks += [{**base, "choices": [{"index": 0, "delta": {"content": w + (" " if i < len(words) - 1
                                                                                         else "")}}]}
                           for i, w in enumerate(words)]
                chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (request.get("stream_options") or {}).get("include_usage"):
                    chunks.append({**base, "choices": [], "usage": usage})
                for chunk in chunks:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
