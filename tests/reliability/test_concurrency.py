"""32 concurrent MCP searches while an indexing job writes; a second process on the same data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import psutil
import pytest
from mcp_client_support import open_client, settings_for, text_of
from reliability_support import assert_consistent

from diver.engine import Engine
from diver.errors import IndexLocked

pytest.importorskip("mcp")
BATCHES, PER_BATCH, SEARCHES = 6, 40, 32


async def test_concurrent_searches_during_indexing(tmp_path: Path) -> None:
    process = psutil.Process()
    seen: set[str] = set()
    failures: list[str] = []
    rss: list[int] = []
    async with open_client(tmp_path) as client:
        for round_no in range(3):
            async def index(round_no: int = round_no) -> None:
                for b in range(BATCHES):
                    docs = [{"id": f"r{round_no}b{b}d{i}", "text": f"triangles primes graphs batch {b} doc {i}"}
                            for i in range(PER_BATCH)]  # fmt: skip
                    result = await client.call_tool("index_documents", {"collection": "base", "documents": docs})
                    if result.is_error:
                        failures.append(text_of(result))

            async def search(i: int) -> None:
                mode = ("hybrid", "bm25", "dense")[i % 3]
                result = await client.call_tool("search", {"collection": "base", "query": f"triangles batch {i % 6}",
                                                           "k": 20, "mode": mode})  # fmt: skip
                if result.is_error:
                    failures.append(text_of(result))
                else:
                    seen.update(h["id"] for h in result.structured_content["hits"])

            async with anyio.create_task_group() as group:
                group.start_soon(index)
                for i in range(SEARCHES):
                    group.start_soon(search, i)
            rss.append(process.memory_info().rss)
    assert not failures, failures[:3]
    with Engine(settings_for(tmp_path)) as engine:
        committed = assert_consistent(engine.collection("base"))
    assert len(committed) == 5 + 3 * BATCHES * PER_BATCH
    assert seen and seen <= committed  # every hit was a committed document, in both indexes at the end
    assert rss[-1] - rss[0] < 200 * 2**20, rss  # bounded across rounds (no per-call leak)


def test_second_process_is_refused_with_a_clear_lock_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with Engine(settings) as engine:
        engine.collection("base", create=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
        env.update(DIVER_DATA_DIR=str(settings.data_dir), DIVER_EMBEDDING__PROVIDER="hashing")
        for args in (["index", "base", str(tmp_path)], ["search", "base", "x"]):
            out = subprocess.run([sys.executable, "-m", "diver.cli", *args], env=env, capture_output=True,  # noqa: S603
                                 text=True, timeout=120)  # fmt: skip
            assert out.returncode != 0 and "in use by another DIVER process" in out.stderr, out.stderr[-1000:]
            assert f"pid {os.getpid()}" in out.stderr and "Traceback" not in out.stderr
        with pytest.raises(IndexLocked):
            Engine(settings)
        assert engine.collection("base").info().documents == 0
