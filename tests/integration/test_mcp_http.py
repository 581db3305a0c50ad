"""The MCP server as a subprocess over streamable HTTP on a free loopback port, with a bearer token."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mcp_support import NAMES, PYTHON, REPO, THEOREMS, fake_openai, server_env, wait_for_port
from servers import free_port, stop

pytest.importorskip("mcp")
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "test-token-0123456789"


def post(url: str, headers: dict[str, str]) -> int:
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_http_server_with_bearer_token(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    log = tmp_path / "server.log"
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        assert message
        progress.append(value)

    with fake_openai() as llm_url, log.open("wb") as sink:
        env = server_env(tmp_path / "data", llm_url, [], DIVER_SERVER__AUTH_TOKEN=TOKEN)
        cmd = [PYTHON, "-m", "diver.server", "--transport", "http", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            wait_for_port(port, proc, log)
            assert post(url, {}) == 401
            assert post(url, {"authorization": "Bearer wrong"}) == 401

            http = create_mcp_http_client(headers={"authorization": f"Bearer {TOKEN}"})
            async with http, Client(streamable_http_client(url, http_client=http)) as client:
                assert "deep_search" in {t.name for t in (await client.list_tools()).tools}
                docs = [{"id": n, "text": f"{n}\n{THEOREMS[n]}"} for n in NAMES[:4]]
                indexed = await client.call_tool(
                    "index_documents", {"collection": "theorems", "documents": docs}
                )
                assert not indexed.is_error and indexed.structured_content["added"] == 4, text_of(indexed)
                found = await client.call_tool(
                    "search", {"collection": "theorems", "query": "prefix codes", "k": 2}
                )
                assert found.structured_content["hits"][0]["id"] == "Kraft inequality"
                deep = await client.call_tool(
                    "deep_search", {"collection": "theorems", "query": "socks in a drawer, guarantee a pair",
                                    "max_rounds": 1, "k": 3}, progress_callback=on_progress,
                )  # fmt: skip
                assert not deep.is_error, text_of(deep)
                assert deep.structured_content["llm_calls"] > 0
                assert len(progress) >= 4 and progress == sorted(set(progress))
                bad = await client.call_tool("search", {"collection": "nope", "query": "x"})
                assert bad.is_error and "unknown collection 'nope'" in text_of(bad)
                refused = await client.call_tool(
                    "index_path", {"collection": "theorems", "path": str(tmp_path)}
                )
                assert refused.is_error and "no allowed roots" in text_of(refused)
        finally:
            stop(proc)


def test_refuses_public_bind_without_token(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", None, [])
    cmd = [
        PYTHON,
        "-m",
        "diver.server",
        "--transport",
        "http",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
    ]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, timeout=180)  # noqa: S603
    assert done.returncode == 1
    assert b"without a bearer token" in done.stderr
