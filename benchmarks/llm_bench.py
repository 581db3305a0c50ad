"""Section 5: pointwise reranking against a local OpenAI-compatible server that answers after a fixed delay.

With concurrency C, 100 documents should take about ceil(100 / C) delays; a rerun with the completion
cache on must send zero requests (counted on the server side).
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class DelayServer:
    """``POST /v1/chat/completions`` -> "Relevance score: 7" after ``delay_s``; counts requests and peak in flight."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.requests = 0
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with owner._lock:
                    owner.requests += 1
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                time.sleep(owner.delay_s)
                with owner._lock:
                    owner.in_flight -= 1
                body = json.dumps(
                    {
                        "id": "bench",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "bench",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Relevance score: 7"},
                            }
                        ],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 4, "total_tokens": 104},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops connections at high concurrency

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DelayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests = self.max_in_flight = 0


async def _rerank(url: str, concurrency: int, documents: int, cache_dir: Path | None) -> tuple[float, Any]:
    from diver.cache import CompletionCache
    from diver.config import ModelSettings, RerankSettings
    from diver.hits import SearchHit
    from diver.llm.client import ChatLLM, LLMUsage
    from diver.stages.rerank.pointwise import rerank_pointwise

    settings = ModelSettings(base_url=url, model="bench", max_retries=0, timeout_s=30)
    cache = CompletionCache(cache_dir) if cache_dir is not None else None
    llm = ChatLLM(settings, role="reranker", concurrency=concurrency, cache=cache)
    hits = [SearchHit(id=f"d{i}", rank=i + 1, score=1.0 / (i + 1)) for i in range(documents)]
    texts = {h.id: f"document {h.id} about topic {i % 7}" for i, h in enumerate(hits)}
    usage = LLMUsage()
    started = time.perf_counter()
    result = await rerank_pointwise(llm, "which document?", hits, texts, RerankSettings(), usage)
    elapsed = time.perf_counter() - started
    if result.call_failures:
        raise RuntimeError(
            f"{len(result.call_failures)} of {documents} calls failed at concurrency {concurrency}"
        )
    return elapsed, usage


async def _all(server: DelayServer, documents: int, concurrencies: tuple[int, ...], cache_dir: Path) -> dict:
    # One event loop for every run: langchain-openai shares its async HTTP client between ChatOpenAI
    # objects, and pooled connections from a closed loop fail in the next one.
    await _rerank(server.url, 4, 4, None)  # warm the client stack
    rows = []
    for c in concurrencies:
        server.reset()
        elapsed, usage = await _rerank(server.url, c, documents, None)
        ideal = math.ceil(documents / c) * server.delay_s
        rows.append(
            {
                "concurrency": c,
                "seconds": round(elapsed, 3),
                "ideal_s": round(ideal, 3),
                "delays": round(elapsed / server.delay_s, 2),
                "ideal_delays": math.ceil(documents / c),
                "ratio_to_ideal": round(elapsed / ideal, 3),
                "server_requests": server.requests,
                "max_in_flight": server.max_in_flight,
                "calls": usage.calls,
            }
        )
    server.reset()
    first_s, _ = await _rerank(server.url, 16, documents, cache_dir)
    first_requests = server.requests
    server.reset()
    second_s, second = await _rerank(server.url, 16, documents, cache_dir)
    return {
        "documents": documents,
        "delay_s": server.delay_s,
        "rows": rows,
        "cached": {
            "first_run_s": round(first_s, 3),
            "first_run_requests": first_requests,
            "rerun_s": round(second_s, 3),
            "rerun_requests": server.requests,
            "rerun_calls": second.calls,
            "rerun_cache_hits": second.cache_hits,
        },
    }


def run(documents: int = 100, delay_s: float = 0.1, concurrencies: tuple[int, ...] = (1, 4, 16, 64)) -> dict:
    with DelayServer(delay_s) as server, tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_all(server, documents, concurrencies, Path(tmp) / "cache"))
