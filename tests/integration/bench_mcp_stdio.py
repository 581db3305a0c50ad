"""Measure the MCP server over stdio on the 354 TheoremQA theorems: start-up to first answered call and
p50/p95 latency of `search` (embedding cache off, so every query is embedded). Not a test (no test_ prefix): run `python tests/integration/bench_mcp_stdio.py`."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters
from mcp_support import PYTHON, REPO, server_env


def build_collection(data_dir: Path) -> list[str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diver.config import load_settings
    from diver.datasets import THEOREMS, build_offline
    from diver.engine import Engine

    bench = build_offline(THEOREMS)
    started = time.perf_counter()
    with Engine(load_settings(data_dir=data_dir)) as engine:
        report = engine.collection("theorems", create=True).upsert(list(bench.corpus), progress=False)
    print(f"indexed {report.added} theorems ({report.chunks} chunks) in {time.perf_counter() - started:.0f}s",
          file=sys.stderr)  # fmt: skip
    return list(bench.queries.values())[:60]


async def measure(data_dir: Path, queries: list[str]) -> None:
    params = StdioServerParameters(command=PYTHON, args=["-m", "diver.server"], cwd=str(REPO),
                                   env=server_env(data_dir, None, [], DIVER_EMBEDDING__CACHE="false"))  # fmt: skip
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=300) as client:
        first = await client.call_tool("search", {"collection": "theorems", "query": queries[0], "k": 10})
        startup = time.perf_counter() - started
        assert not first.is_error
        latencies = []
        for query in queries:
            t = time.perf_counter()
            result = await client.call_tool("search", {"collection": "theorems", "query": query, "k": 10})
            latencies.append((time.perf_counter() - t) * 1000)
            assert not result.is_error and len(result.structured_content["hits"]) == 10
    latencies.sort()
    print(f"start-up to first answered search: {startup:.1f}s")
    print(f"search over stdio, {len(latencies)} queries, k=10 hybrid: p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {latencies[int(0.95 * len(latencies)) - 1]:.1f} ms, min {latencies[0]:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="diver-bench-"))
    if not (directory / "collections" / "theorems" / "meta.json").exists():
        qs = build_collection(directory)
    else:
        from diver.datasets import THEOREMS, build_offline

        qs = list(build_offline(THEOREMS).queries.values())[:60]
    asyncio.run(measure(directory, qs))
