"""Helpers of the reliability suite: a fault-injecting OpenAI-compatible server, consistency checks."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECRET_KEY = "sk-diver-secret-XYZ"
SECRET_TOKEN = "tok-diver-bearer-QRS-0123456789"
HANG_MAX_S = 5.0
"""A hanging reply is held at most this long (or until the server stops): no unbounded sleep."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fault",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def good_reply(prompt: str) -> str:
    if "Relevance score" in prompt:
        return "Relevance score: 7"
    if "candidate documents" in prompt:
        return "```json\n[2, 1]\n```"
    return "An answering passage about triangles and probability."


class FaultServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that answers every request with ``mode``.

    Modes: ok, hang, http500, http429, truncated (valid HTTP, JSON cut mid-way), dropped (connection
    closed mid-body), empty_content (a valid completion with ""), empty_body (200, no bytes), html,
    plain, and ``429_then_ok`` (the first request of each prompt gets 429 + Retry-After, then ok).
    """

    def __init__(self, mode: str, retry_after: str = "1") -> None:
        self.mode = mode
        self.retry_after = retry_after
        self.requests: list[dict[str, Any]] = []
        self.seen_auth: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._prompts_seen: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._send(200, json.dumps({"data": [{"id": "fault"}]}).encode(), "application/json")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
                with server._lock:
                    server.requests.append({"t": time.monotonic(), "prompt": prompt})
                    server.seen_auth.add(self.headers.get("authorization", ""))
                    first = prompt not in server._prompts_seen
                    server._prompts_seen.add(prompt)
                server.respond(self, prompt, first)

            def _send(self, status: int, data: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._handler = Handler
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, handler: Any, prompt: str, first: bool) -> None:
        mode = self.mode
        ok = json.dumps(completion(good_reply(prompt))).encode()
        if mode == "ok" or (mode == "429_then_ok" and not first):
            handler._send(200, ok, "application/json")
        elif mode in ("http429", "429_then_ok"):
            error = json.dumps({"error": {"message": "rate limited", "type": "rate_limit"}}).encode()
            handler._send(429, error, "application/json", {"retry-after": self.retry_after})
        elif mode == "hang":
            self._stop.wait(HANG_MAX_S)
            handler.close_connection = True
        elif mode == "http500":
            handler._send(500, b'{"error": {"message": "internal boom"}}', "application/json")
        elif mode == "truncated":
            handler._send(200, ok[: len(ok) // 2], "application/json")
        elif mode == "dropped":
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(ok)))
            handler.end_headers()
            handler.wfile.write(ok[: len(ok) // 2])
            handler.wfile.flush()
            handler.close_connection = True
        elif mode == "empty_content":
            handler._send(200, json.dumps(completion("")).encode(), "application/json")
        elif mode == "empty_body":
            handler._send(200, b"", "application/json")
        elif mode == "html":
            handler._send(200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        elif mode == "plain":
            handler._send(200, b"Relevance score: 9", "text/plain")
        else:
            raise AssertionError(f"unknown fault mode {mode}")

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def cache_rows(cache_dir: Path) -> list[dict[str, Any]]:
    """Every completion stored in the LLM disk cache (``cache/llm/completions.sqlite``)."""
    import sqlite3

    path = cache_dir / "llm" / "completions.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return [json.loads(v) for (v,) in conn.execute("SELECT v FROM kv")]
    finally:
        conn.close()


def index_state(col: Any) -> tuple[set[str], set[str], list[str], set[str]]:
    """(catalog ids, BM25 ids, dense doc ids with one entry per vector, pending keys) of an open collection."""
    with col.catalog.snapshot() as db:
        catalog = {row[0] for row in db.execute("SELECT id FROM documents")}
        view = col._lexical_view(db)
        raw = col.store.all_keys()
        keys = col.catalog.resolve(db, raw)
        pending = {row[0] for row in db.execute("SELECT key FROM pending")}
        orphans = {row[0] for row in db.execute("SELECT key FROM orphans")}
    bm25 = set(view.doc_ids)
    assert len(view.doc_ids) == len(bm25), "duplicate rows in the BM25 index"
    assert len(raw) == len(set(raw)), "duplicate vector ids"
    stray = [k for k in raw if k not in keys]
    untracked = [k for k in stray if k not in pending | orphans]
    assert not untracked, f"{len(untracked)} dense vectors belong to no document and are not tracked"
    assert not stray, f"{len(stray)} dense vectors of no visible document (tracked, not reconciled on open)"
    return catalog, bm25, [keys[k][0] for k in raw], pending


def assert_consistent(col: Any) -> set[str]:
    """Catalog ids == BM25 ids == dense doc ids, chunk counts agree, nothing pending; returns the ids."""
    catalog, bm25, dense_docs, pending = index_state(col)
    assert catalog == bm25 == set(dense_docs), (len(catalog), len(bm25), len(set(dense_docs)))
    with col.catalog.snapshot() as db:
        chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        declared = db.execute("SELECT COALESCE(SUM(n_chunks), 0) FROM documents").fetchone()[0]
    assert len(dense_docs) == chunks == declared, (len(dense_docs), chunks, declared)
    assert not pending, f"{len(pending)} pending keys left after reconcile"
    return catalog
