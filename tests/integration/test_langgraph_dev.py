"""``langgraph dev`` serves the repo's langgraph.json; the graph runs through its HTTP API.

Retrieval-only always (no LLM configured: the graph says so instead of crashing); with the local-llm
extra installed, a second run turns the LLM stages on through the run context.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port, stop, wait_for_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _langgraph_cli() -> str | None:
    local = Path(sys.executable).with_name("langgraph")
    return str(local) if local.exists() else shutil.which("langgraph")


@pytest.fixture(scope="module")
def dev_server(theorem_data_dir: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = _langgraph_cli()
    if cli is None:
        pytest.skip("langgraph-cli is not installed: pip install 'diver-retrieval[studio]'")
    data_dir, _ = theorem_data_dir
    port = free_port()
    log = tmp_path_factory.mktemp("langgraph-dev") / "server.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIVER_")},
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "DIVER_DATA_DIR": str(data_dir),
    }
    cmd = [cli, "dev", "--port", str(port), "--host", "127.0.0.1", "--no-browser", "--no-reload"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ok", proc, 180, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _post(url: str, payload: dict[str, Any], timeout: float = 600) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.read()


def _stream(base: str, payload: dict[str, Any]) -> list[tuple[str, Any]]:
    """POST /runs/stream and parse the server-sent events into (event, data) pairs."""
    body = _post(f"{base}/runs/stream", payload).decode().replace("\r\n", "\n")
    events: list[tuple[str, Any]] = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields and "data" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_graph_is_registered(dev_server: str) -> None:
    found = json.loads(_post(f"{dev_server}/assistants/search", {"graph_id": "diver"}))
    assert found and found[0]["graph_id"] == "diver"


def test_retrieval_only_run_over_http(dev_server: str, theorem_data_dir: tuple[Path, Any]) -> None:
    _, bench = theorem_data_dir
    query = next(iter(bench.queries.values()))
    payload = {
        "assistant_id": "diver",
        "input": {"query": query},
        "context": {"collection": "theorems", "k": 5},
        "stream_mode": ["custom", "values"],
    }
    events = _stream(dev_server, payload)
    errors = [data for name, data in events if name == "error"]
    assert not errors, errors
    custom = [data for name, data in events if name == "custom"]
    assert any(e.get("event") == "retrieved" for e in custom)
    final = [data for name, data in events if name == "values"][-1]
    assert len(final["results"]) == 5 and final["results"][0]["rank"] == 1
    assert "no expander" in final["stop_reason"]
    assert any("no reranker LLM configured" in n for n in final["notes"])


def test_llm_run_over_http(
    dev_server: str, theorem_data_dir: tuple[Path, Any], request: pytest.FixtureRequest
) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'diver-retrieval[local-llm]'")
    base_url = request.getfixturevalue("llama_server")
    _, bench = theorem_data_dir
    query = list(bench.queries.values())[1]
    context = {
        "collection": "theorems", "k": 5, "rounds": 1, "n": 1, "passage_tokens": 64, "rerank_k": 5,
        "doc_tokens": 96, "expander_model": "smollm2", "reranker_model": "smollm2", "llm_base_url": base_url,
    }  # fmt: skip
    final = json.loads(
        _post(
            f"{dev_server}/runs/wait",
            {"assistant_id": "diver", "input": {"query": query}, "context": context},
        )
    )
    assert len(final["results"]) == 5
    assert final["round"] == 1 and len(final["expansions"]) == 1
    assert final["usage"]["pointwise"]["calls"] + final["usage"]["pointwise"]["failures"] == 5
    assert "listwise" in final["usage"]
