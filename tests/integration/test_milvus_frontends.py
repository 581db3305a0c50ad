"""Stateless frontends on one Milvus (docs/scaling.md, many machines): two `diver serve --transport http`
processes with different data directories on one real `milvus-lite server`, all on 127.0.0.1.

A writer on A and readers on A and B see only whole committed batches, then identical rankings and counts;
A killed with kill -9 mid-index: B keeps answering and a rerun on B completes the index with no duplicates;
Milvus stopped: the tools fail with the typed VectorStoreUnavailable message; restarted: identical results."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_support import REPO, wait_for_port
from milvus_support import MilvusLite
from servers import free_port, stop

pytest.importorskip("mcp")
pytest.importorskip("pymilvus")
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

pytestmark = pytest.mark.integration
TOKEN = "milvus-frontends-test-token"
DIVER = str(Path(os.sys.executable).with_name("diver"))


def batch_docs(batch: int, size: int = 10) -> list[dict[str, Any]]:
    """Documents of one batch: every one holds 'graphs' (a query that sees all) and its batch's own word."""
    return [{"id": f"b{batch}-{i}", "text": f"batch{batch} note {i} on graphs topic{i % 7} ünïcode {'x' * (i % 5)}",
             "metadata": {"batch": batch, "source": f"/notes/b{batch}/{i}.md"}} for i in range(size)]  # fmt: skip


class Frontends:
    def __init__(self, root: Path, milvus: MilvusLite) -> None:
        self.root, self.milvus = root, milvus
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}

    def start(self, name: str, **extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
        env.update(HF_HUB_OFFLINE="1", DIVER_DATA_DIR=str(self.root / f"data-{name}"),
                   DIVER_EMBEDDING__PROVIDER="hashing", DIVER_ENGINE__MODE="local",
                   DIVER_STORE__BACKEND="milvus", DIVER_STORE__MILVUS_URI=self.milvus.uri,
                   DIVER_STORE__MILVUS_TIMEOUT_S="5", DIVER_SERVER__AUTH_TOKEN=TOKEN, **extra)  # fmt: skip
        port, log = free_port(), self.root / f"frontend-{name}.log"
        with log.open("ab") as sink:
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own CLI, loopback only
                [DIVER, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
                env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for_port(port, self.procs[name], log)
        self.urls[name] = f"http://127.0.0.1:{port}/mcp"

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc)


@asynccontextmanager
async def client(url: str) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"authorization": f"Bearer {TOKEN}"})
    async with http, Client(streamable_http_client(url, http_client=http)) as mcp:
        yield mcp


async def call(mcp: Client, tool: str, args: dict[str, Any]) -> Any:
    """The tool's structured result; a tool error or a JSON-RPC error (how a typed DiverError may come back)
    as a RuntimeError carrying its message."""
    try:
        result = await mcp.call_tool(tool, args)
    except MCPError as exc:
        raise RuntimeError(str(exc)) from exc
    if result.is_error:
        raise RuntimeError(" ".join(getattr(c, "text", "") for c in result.content)[:500])
    return result.structured_content


async def ranking(mcp: Client, query: str = "graphs topic3 batch2", k: int = 20) -> list[tuple[str, float]]:
    found = await call(mcp, "search", {"collection": "notes", "query": query, "k": k})
    return [(h["id"], h["score"]) for h in found["hits"]]


async def count(mcp: Client) -> int:
    listed = await call(mcp, "list_collections", {})
    return sum(c["documents"] for c in listed["collections"] if c["name"] == "notes")


@pytest.fixture
def milvus(tmp_path: Path):
    server = MilvusLite(tmp_path / "milvus").start()
    yield server
    server.stop()


async def test_readers_on_two_frontends_see_whole_batches_and_the_same_ranking(tmp_path: Path, milvus) -> None:
    fronts = Frontends(tmp_path, milvus)
    try:
        fronts.start("a")
        fronts.start("b")
        seen: list[set[str]] = []
        async with client(fronts.urls["a"]) as a, client(fronts.urls["b"]) as b:
            await call(a, "index_documents", {"collection": "notes", "documents": batch_docs(0)})
            done = anyio.Event()

            async def writer() -> None:
                for batch in range(1, 9):
                    await call(a, "index_documents", {"collection": "notes", "documents": batch_docs(batch)})
                done.set()

            async def reader(mcp: Client) -> None:
                while not done.is_set():
                    found = await call(mcp, "search", {"collection": "notes", "query": "graphs", "k": 200,
                                                       "mode": "bm25", "max_chars": 500_000})  # fmt: skip
                    assert not any("dropped" in n for n in found.get("notes", []))
                    seen.append({h["id"] for h in found["hits"]})

            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                group.start_soon(reader, a)
                group.start_soon(reader, b)
            assert len(seen) >= 4
            for hits in seen:  # each answer is a union of whole batches, never a part of one
                batches = {h.split("-")[0] for h in hits}
                assert hits == {d["id"] for b in batches for d in batch_docs(int(b[1:]))}, sorted(hits)
            assert await count(a) == await count(b) == 90
            assert await ranking(a) == await ranking(b) and len(await ranking(a)) == 20
            for mode in ("dense", "hybrid"):
                args = {"collection": "notes", "query": "graphs topic3", "k": 10, "mode": mode, "where": {"batch": 3}}
                hits_a, hits_b = (await call(a, "search", args))["hits"], (await call(b, "search", args))["hits"]
                assert [h["id"] for h in hits_a] == [h["id"] for h in hits_b]
                assert {h["metadata"]["batch"] for h in hits_a} == {3} and len(hits_a) == 10
            got = await call(b, "get_document", {"collection": "notes", "id": "b4-2"})  # written by A, read on B
            assert "batch4 note 2" in str(got)
    finally:
        fronts.stop_all()


async def test_kill_9_mid_index_then_a_rerun_on_another_frontend_completes_without_duplicates(
    tmp_path: Path, milvus
) -> None:
    fronts = Frontends(tmp_path, milvus)
    docs = [d for b in range(100) for d in batch_docs(b)]  # 1,000 documents, 50 batches of 20
    try:
        fronts.start("a", DIVER_STORE__WRITE_BATCH_SIZE="20")
        fronts.start("b", DIVER_STORE__WRITE_BATCH_SIZE="20")
        async with client(fronts.urls["b"]) as b:
            await call(b, "index_documents", {"collection": "notes", "documents": docs[:20]})

            async def index_on_a() -> None:
                async with client(fronts.urls["a"]) as a:
                    await call(a, "index_documents", {"collection": "notes", "documents": docs})

            async with anyio.create_task_group() as group:
                group.start_soon(index_on_a)
                deadline = time.monotonic() + 120
                while await count(b) < 120 and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                fronts.procs["a"].send_signal(signal.SIGKILL)  # mid-index: committed batches, maybe a half one
                fronts.procs["a"].wait(timeout=30)
                group.cancel_scope.cancel()
            partial = await count(b)
            assert 120 <= partial < 1000, partial
            assert await ranking(b)  # B keeps answering
            report = await call(b, "index_documents", {"collection": "notes", "documents": docs})
            assert report["unchanged"] >= partial - 20 and report["added"] + report["unchanged"] == 1000
            assert await count(b) == 1000
        from pymilvus import MilvusClient

        raw = MilvusClient(uri=milvus.uri)
        rows = raw.query("diver_c_notes", filter="", output_fields=["count(*)"])[0]["count(*)"]
        assert rows == 1000  # one chunk per document: no duplicates, no strays of the killed batch
        raw.close()
    finally:
        fronts.stop_all()


async def test_milvus_outage_is_a_typed_error_and_a_restart_gives_identical_results(tmp_path: Path, milvus) -> None:
    fronts = Frontends(tmp_path, milvus)
    try:
        fronts.start("a")
        fronts.start("b")
        async with client(fronts.urls["a"]) as a, client(fronts.urls["b"]) as b:
            for batch in range(3):
                await call(a, "index_documents", {"collection": "notes", "documents": batch_docs(batch)})
            before = await ranking(b)
            milvus.stop()
            for mcp in (a, b):
                with pytest.raises(RuntimeError, match="VectorStoreUnavailable: Milvus .* is unreachable"):
                    await ranking(mcp)
            with pytest.raises(RuntimeError, match="VectorStoreUnavailable"):
                await call(a, "index_documents", {"collection": "notes", "documents": batch_docs(7)})
            milvus.start()
            for mcp in (a, b):  # the client reconnects (gRPC backoff): typed errors until it has
                deadline = time.monotonic() + 60
                while True:
                    try:
                        assert await ranking(mcp) == before
                        break
                    except RuntimeError as exc:
                        assert "VectorStoreUnavailable" in str(exc) and time.monotonic() < deadline, exc
                        await anyio.sleep(0.5)
            assert await count(b) == 30
    finally:
        fronts.stop_all()
