"""Support for the MCP integration tests: a canned OpenAI-compatible chat server on loopback, TheoremQA
documents on disk, the server's environment, and a stdout tee that records every byte the server writes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
THEOREMS: dict[str, str] = json.loads((REPO / "data/theoremqa/all_theorems.json").read_text(encoding="utf-8"))
NAMES = [
    "Pigeonhole Principle",
    "Kraft inequality",
    "Fermat's little theorem",
    "Bayes' theorem",
    "Euler's formula",
]
TEE = Path(__file__).with_name("stdout_tee.py")


def canned_reply(prompt: str) -> str:
    """Pointwise: high score for the pigeonhole document; listwise: identity order; else an expansion."""
    if "Relevance score: X" in prompt:
        return "Relevance score: 9" if "Pigeonhole" in prompt else "Relevance score: 1"
    match = re.search(r"(\d+) candidate documents", prompt)
    if match:
        return "```json\n" + json.dumps(list(range(1, int(match.group(1)) + 1))) + "\n```"
    return "The pigeonhole principle: placing n+1 items into n boxes puts two items in one box."


class _ChatHandler(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        type(self).calls += 1
        payload = {
            "id": f"chatcmpl-{self.calls}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": canned_reply(prompt)}}
                        for i in range(int(body.get("n") or 1))],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
        }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        return


@contextmanager
def fake_openai() -> Iterator[str]:
    """Base URL (…/v1) of a canned chat-completions server on a free loopback port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_theorems(folder: Path, names: list[str] = NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / f"t{i}.txt").write_text(f"{name}\n{THEOREMS[name]}", encoding="utf-8")
    (folder / "junk.txt").write_bytes(b"\x00\xff binary")
    return folder


def server_env(data_dir: Path, llm_url: str | None, roots: list[Path], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update(HF_HUB_OFFLINE="1", DIVER_DATA_DIR=str(data_dir), DIVER_LLM__CACHE="false",
               DIVER_SERVER__ALLOWED_ROOTS=json.dumps([str(r) for r in roots]))  # fmt: skip
    if llm_url:
        for role in ("EXPANDER", "RERANKER"):
            env[f"DIVER_LLM__{role}__BASE_URL"] = llm_url
            env[f"DIVER_LLM__{role}__MODEL"] = "fake-model"
            env[f"DIVER_LLM__{role}__MAX_RETRIES"] = "0"
    env.update(extra)
    return env


def is_jsonrpc_frame(line: bytes) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("jsonrpc") == "2.0"


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    """Until a server process listens on 127.0.0.1:port; its log tail in the error if it died or never did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"server did not listen on {port}: {log.read_text()[-3000:]}")
