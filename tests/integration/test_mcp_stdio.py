"""The MCP server as a subprocess over stdio, through the SDK's real client (MiniLM, canned LLM server).

One server process for the whole scenario (start-up loads MiniLM): tools, index_path, search, deep_search
with progress, error results; stdout must carry nothing but JSON-RPC frames.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from mcp_support import PYTHON, REPO, TEE, fake_openai, is_jsonrpc_frame, server_env, write_theorems

pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_stdio_server_end_to_end(tmp_path: Path) -> None:
    write_theorems(tmp_path / "docs" / "theorems")
    stdout_log = tmp_path / "stdout.jsonl"
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    with fake_openai() as llm_url:
        params = StdioServerParameters(
            command=PYTHON,
            args=[str(TEE), str(stdout_log), PYTHON, "-m", "diver.server", "--transport", "stdio"],
            env=server_env(tmp_path / "data", llm_url, [tmp_path / "docs"]),
            cwd=str(REPO),
        )
        started = time.perf_counter()
        async with Client(params, read_timeout_seconds=300) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            startup_s = time.perf_counter() - started
            assert {"search", "deep_search", "index_documents", "index_path", "list_collections"} <= tools

            indexed = await client.call_tool("index_path", {"collection": "theorems", "path": "theorems", "wait": True})
            assert not indexed.is_error, text_of(indexed)
            assert indexed.structured_content["added"] == 5
            assert any(s.startswith("junk.txt: binary") for s in indexed.structured_content["skipped"])

            found = await client.call_tool(
                "search", {"collection": "theorems", "query": "pigeonhole boxes", "k": 3}
            )
            assert not found.is_error, text_of(found)
            assert found.structured_content["hits"][0]["title"] == "Pigeonhole Principle"

            deep = await client.call_tool(
                "deep_search",
                {"collection": "theorems", "query": "How many socks must I draw to get a pair?", "k": 3,
                 "max_rounds": 1},
                progress_callback=on_progress,
            )  # fmt: skip
            assert not deep.is_error, text_of(deep)
            out = deep.structured_content
            assert out["rounds"] == 1 and out["llm_calls"] > 0 and out["tokens"] > 0
            assert out["hits"][0]["title"] == "Pigeonhole Principle"
            values = [p[0] for p in progress]
            assert len(values) >= 4 and values == sorted(set(values)) and all(p[2] for p in progress)

            for tool, args, message in [
                ("search", {"collection": "theorems", "query": ""}, "query is empty"),
                ("search", {"collection": "theorems", "query": "x", "k": 0}, "greater than or equal to 1"),
                ("search", {"collection": "missing", "query": "x"}, "unknown collection 'missing'"),
                ("index_path", {"collection": "theorems", "path": "/etc"}, "outside the allowed roots"),
            ]:
                result = await client.call_tool(tool, args)
                assert result.is_error and message in text_of(result), (tool, text_of(result))

    lines = stdout_log.read_bytes().splitlines()
    assert len(lines) >= 10
    bad = [line[:200] for line in lines if not is_jsonrpc_frame(line)]
    assert not bad, f"non-JSON-RPC output on stdout: {bad}"
    print(f"stdio start-up to first answered call: {startup_s:.1f}s")
