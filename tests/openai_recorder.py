"""A scripted OpenAI-compatible server on 127.0.0.1 that records every request: ``/v1/models`` (with vLLM's
``max_model_len`` when given) and ``/v1/chat/completions`` answered by ``reply(prompt)``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingServer:
    def __init__(self, reply: Callable[[str], str], model: str = "scripted", max_model_len: int | None = None) -> None:
        self.reply = reply
        self.model = model
        self.max_model_len = max_model_len
        self.bodies: list[dict[str, Any]] = []
        self.model_queries = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.rstrip("/").endswith("/models"):
                    with owner._lock:
                        owner.model_queries += 1
                    row: dict[str, Any] = {"id": owner.model, "object": "model"}
                    if owner.max_model_len:
                        row["max_model_len"] = owner.max_model_len
                    self._send(200, {"object": "list", "data": [row]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                with owner._lock:
                    owner.bodies.append(body)
                prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
                text = owner.reply(prompt)
                self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                })  # fmt: skip

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def prompts(self) -> list[str]:
        with self._lock:
            return ["\n".join(str(m.get("content", "")) for m in b.get("messages", [])) for b in self.bodies]

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
