"""Chroma server mode for real (`chroma run`): an outage mid-search, recovery, and the loopback simulation
of docs/scaling.md (two DIVER HTTP MCP servers on one Chroma server, a writer on one, readers on both)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_support import PYTHON, REPO, wait_for_port
from servers import free_port, stop, wait_for_http

from diver.errors import VectorStoreUnavailable
from diver.text.documents import Document

pytest.importorskip("mcp")
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

pytestmark = pytest.mark.integration

TOKEN = "chroma-shared-token-0123456789"


def start_chroma(root: Path, port: int) -> subprocess.Popen[bytes]:
    """`chroma run` on 127.0.0.1:port persisting under root/data (the same path again after a restart)."""
    cli = shutil.which("chroma", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("the `chroma` CLI (shipped by the chromadb wheel) is not installed")
    log = root / "chroma.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(  # noqa: S603 - our own venv's CLI, loopback only
            [cli, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(root / "data")],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, 60, log)
    return proc


def docs(prefix: str, count: int) -> list[Document]:
    return [Document(id=f"{prefix}{i}", text=f"{prefix} note {i} on topic{i % 7} graphs primes") for i in range(count)]


def test_chroma_server_outage_gives_a_typed_error_and_recovery_resumes(tmp_path: Path) -> None:
    from tests_support import make_settings

    from diver.engine import Engine

    port = free_port()
    chroma = start_chroma(tmp_path, port)
    # dense searches through the store: a collection this small would otherwise be searched from its exact
    # in-memory matrix (store.dense_exact_below), which keeps answering while the server is away
    settings = make_settings(tmp_path, store={"chroma_url": f"http://127.0.0.1:{port}", "dense_search": "hnsw"})
    try:
        with Engine(settings) as engine:
            col = engine.collection("notes", create=True)
            col.upsert(docs("n", 30))
            before = [h.id for h in col.search("topic3 graphs", k=5, mode="dense").hits]
            errors: list[BaseException] = []
            stop_searching = threading.Event()

            def keep_searching() -> None:  # searches in flight while the server goes away
                while not stop_searching.is_set():
                    try:
                        col.search("topic3 graphs", k=5, mode="hybrid")
                    except VectorStoreUnavailable as exc:
                        errors.append(exc)
                        return

            searcher = threading.Thread(target=keep_searching)
            searcher.start()
            time.sleep(0.3)
            stop(chroma)
            searcher.join(timeout=60)
            stop_searching.set()
            assert errors and "unreachable" in str(errors[0])
            with pytest.raises(VectorStoreUnavailable):
                col.search("topic3 graphs", k=5, mode="dense")
            with pytest.raises(VectorStoreUnavailable):
                col.upsert(docs("lost", 3))  # a write during the outage fails whole ...
            assert col.search("topic3 graphs", k=5, mode="bm25").hits  # BM25 needs no Chroma
            assert col.info().documents == 30  # ... and nothing of it became visible

            chroma = start_chroma(tmp_path, port)  # the server comes back on the same data
            assert [h.id for h in col.search("topic3 graphs", k=5, mode="dense").hits] == before
            report = col.upsert(docs("lost", 3))
            assert report.added == 3
        with Engine(settings) as engine:  # reopen: the interrupted write is reconciled, nothing corrupt
            col = engine.collection("notes")
            assert col.info().documents == 33
            assert sorted(col.store.all_keys()) == sorted(col.catalog.all_keys())
            assert [h.id for h in col.search("topic3 graphs", k=5, mode="dense").hits][:1] == before[:1]
    finally:
        stop(chroma)


def test_small_collection_answers_from_its_exact_matrix_during_an_outage(tmp_path: Path) -> None:
    """Below store.dense_exact_below, dense search reads the in-memory matrix: it keeps answering (the same
    hits) while the Chroma server is away; a write still fails whole and leaves nothing visible."""
    from tests_support import make_settings

    from diver.engine import Engine

    port = free_port()
    chroma = start_chroma(tmp_path, port)
    settings = make_settings(tmp_path, store={"chroma_url": f"http://127.0.0.1:{port}"})
    try:
        with Engine(settings) as engine:
            col = engine.collection("notes", create=True)
            col.upsert(docs("n", 30))
            first = col.search("topic3 graphs", k=5, mode="dense")
            assert first.dense_path == "exact"
            stop(chroma)
            during = col.search("topic3 graphs", k=5, mode="dense")
            assert [(h.id, h.score) for h in during.hits] == [(h.id, h.score) for h in first.hits]
            with pytest.raises(VectorStoreUnavailable):
                col.upsert(docs("lost", 3))
            assert col.info().documents == 30
            assert [h.id for h in col.search("topic3 graphs", k=5, mode="dense").hits] == [h.id for h in first.hits]
    finally:
        stop(chroma)


async def test_two_http_servers_on_one_chroma_server_answer_consistently(tmp_path: Path) -> None:
    port = free_port()
    chroma = start_chroma(tmp_path, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update(DIVER_DATA_DIR=str(tmp_path / "diver"), DIVER_EMBEDDING__PROVIDER="hashing", HF_HUB_OFFLINE="1",
               DIVER_STORE__CHROMA_URL=f"http://127.0.0.1:{port}", DIVER_ENGINE__IDLE_TIMEOUT_S="10",
               DIVER_SERVER__AUTH_TOKEN=TOKEN)  # fmt: skip
    servers: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(2):
            http_port, log = free_port(), tmp_path / f"http{i}.log"
            with log.open("wb") as sink:
                servers.append(subprocess.Popen(  # noqa: S603
                    [PYTHON, "-m", "diver.server", "--transport", "http", "--host", "127.0.0.1", "--port",
                     str(http_port)], env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT))  # fmt: skip
            wait_for_port(http_port, servers[-1], log)
            urls.append(f"http://127.0.0.1:{http_port}/mcp")
        written: set[str] = set()
        answers: list[tuple[int, set[str], set[str]]] = []  # (reader, hits, written before the call)
        failures: list[str] = []

        async def call(client: Client, tool: str, args: dict[str, Any]) -> Any:
            result = await client.call_tool(tool, args)
            if result.is_error:
                failures.append(" ".join(getattr(c, "text", "") for c in result.content)[:300])
                return None
            return result.structured_content

        auth = {"authorization": f"Bearer {TOKEN}"}  # the HTTP transport always requires a token
        http_a, http_b = create_mcp_http_client(headers=auth), create_mcp_http_client(headers=auth)
        async with http_a, http_b, Client(streamable_http_client(urls[0], http_client=http_a)) as a, \
                Client(streamable_http_client(urls[1], http_client=http_b)) as b:  # fmt: skip
            clients = [a, b]
            await call(a, "index_documents", {"collection": "notes", "documents": [d.model_dump() for d in docs("w", 5)]})
            written.update(f"w{i}" for i in range(5))

            async def writer() -> None:
                for batch in range(6):
                    batch_docs = [d.model_dump() for d in docs(f"b{batch}-", 10)]
                    await call(a, "index_documents", {"collection": "notes", "documents": batch_docs})
                    written.update(d["id"] for d in batch_docs)

            async def reader(index: int) -> None:
                for _ in range(12):
                    before = set(written)
                    found = await call(clients[index], "search", {"collection": "notes", "query": "topic3", "k": 50})
                    if found is not None:
                        answers.append((index, {h["id"] for h in found["hits"]}, before))

            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                group.start_soon(reader, 0)
                group.start_soon(reader, 1)
            final = []
            for client in clients:
                found = await call(client, "search", {"collection": "notes", "query": "topic3 graphs", "k": 20})
                final.append([(h["id"], h["score"]) for h in found["hits"]])
                listed = await call(client, "list_collections", {})
                assert listed["collections"][0]["documents"] == 65
        assert not failures, failures[:3]
        all_docs = {f"w{i}" for i in range(5)} | {f"b{b}-{i}" for b in range(6) for i in range(10)}
        for _, hits, _ in answers:
            assert hits <= all_docs  # only documents the writer committed
        assert {reader for reader, _, _ in answers} == {0, 1}
        assert final[0] == final[1] and len(final[0]) == 20  # both servers give the same ranking
    finally:
        for proc in servers:
            stop(proc)
        from diver.config import load_settings
        from diver.service.client import RemoteEngine
        from diver.service.protocol import socket_path
        from diver.service.spawn import try_connect

        conn = try_connect(socket_path((tmp_path / "diver").resolve()))
        if conn is not None:
            conn.close()
            settings = load_settings(data_dir=tmp_path / "diver", embedding={"provider": "hashing"},
                                     store={"chroma_url": f"http://127.0.0.1:{port}"}, engine={"mode": "shared"})  # fmt: skip
            RemoteEngine(settings).stop_engine()
        stop(chroma)
