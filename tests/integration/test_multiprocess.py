"""Many processes on one data directory through the shared engine (diver.service), with real processes.

Three `diver serve` stdio processes (MCP SDK client) search while a `diver index` CLI process writes; the
engine is killed with SIGKILL mid-write; stale socket/pid files are cleaned; a local Engine takes over an
idle engine. The hashing embedder keeps it light (`DIVER_EMBEDDING__PROVIDER=hashing`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_support import PYTHON, REPO

pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.errors import EngineSettingsMismatch, IndexLocked  # noqa: E402
from diver.service.client import RemoteEngine
from diver.service.protocol import read_pid, socket_path  # noqa: E402
from diver.service.spawn import clean_stale_files  # noqa: E402

pytestmark = pytest.mark.integration
BATCH = 40
CORPUS = 1000


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}  # shared mode: the default
    env.update(DIVER_DATA_DIR=str(data_dir), DIVER_EMBEDDING__PROVIDER="hashing", HF_HUB_OFFLINE="1",
               DIVER_STORE__WRITE_BATCH_SIZE=str(BATCH), DIVER_ENGINE__IDLE_TIMEOUT_S="20", **extra)  # fmt: skip
    return env


def settings_for(data_dir: Path) -> Any:
    """The same index settings as ``env_for`` (a client with other ones is refused by the engine)."""
    return load_settings(data_dir=data_dir, embedding={"provider": "hashing"}, store={"write_batch_size": BATCH},
                         engine={"mode": "shared", "idle_timeout_s": 20})  # fmt: skip


def write_corpus(path: Path, prefix: str, count: int) -> set[str]:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            text = f"{prefix} document {i} about topic{i % 23} triangles primes graphs {' filler' * (i % 40)}"
            handle.write(json.dumps({"id": f"{prefix}{i}", "text": text}) + "\n")
    return {f"{prefix}{i}" for i in range(count)}


def cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "diver.cli", *args], env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=timeout, cwd=REPO)  # fmt: skip


def committed_ids(data_dir: Path, collection: str) -> set[str]:
    """Ids committed to the collection's catalog now (read-only, beside the engine)."""
    import sqlite3

    path = data_dir / "collections" / collection / "catalog.sqlite"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {row[0] for row in conn.execute("SELECT id FROM documents")}
        finally:
            conn.close()
    except sqlite3.Error:
        return set()


def kill_engine(data_dir: Path) -> None:
    pid = read_pid(data_dir)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


async def test_three_mcp_servers_and_a_cli_writer_share_one_engine(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = env_for(data_dir)
    seed = write_corpus(tmp_path / "seed.jsonl", "s", 30)
    corpus = write_corpus(tmp_path / "corpus.jsonl", "c", CORPUS)
    out = cli(["index", "notes", str(tmp_path / "seed.jsonl")], env)
    assert out.returncode == 0, out.stderr
    first_engine = read_pid(data_dir)
    failures: list[str] = []
    seen: set[str] = set()
    latencies: dict[str, list[float]] = {"one": [], "three": []}

    params = StdioServerParameters(command=PYTHON, args=["-m", "diver.server", "--transport", "stdio"],
                                   env=env, cwd=str(REPO))  # fmt: skip

    async def search(client: Client, query: str, bucket: list[float] | None = None) -> None:
        started = time.perf_counter()
        result = await client.call_tool("search", {"collection": "notes", "query": query, "k": 5})
        if bucket is not None:
            bucket.append((time.perf_counter() - started) * 1000.0)
        if result.is_error:
            failures.append(" ".join(getattr(c, "text", "") for c in result.content)[:300])
            return
        hits = {h["id"] for h in result.structured_content["hits"]}
        uncommitted = hits - committed_ids(data_dir, "notes")  # the catalog only grows in this test
        if uncommitted:
            failures.append(f"hits not committed when the search returned: {sorted(uncommitted)[:5]}")
        seen.update(hits)

    async with Client(params, read_timeout_seconds=120) as a, Client(params, read_timeout_seconds=120) as b, \
            Client(params, read_timeout_seconds=120) as c:  # fmt: skip
        clients = [a, b, c]
        for client in clients:
            await search(client, "warm up")
        assert read_pid(data_dir) == first_engine  # the servers joined the engine the CLI started
        for i in range(10):  # search latency, one client, then three at once (no writer)
            await search(a, f"topic{i % 23} triangles", latencies["one"])
        for i in range(10):
            async with anyio.create_task_group() as group:
                for client in clients:
                    group.start_soon(search, client, f"topic{i % 23} primes", latencies["three"])

        writer = subprocess.Popen([PYTHON, "-m", "diver.cli", "index", "notes", str(tmp_path / "corpus.jsonl"),  # noqa: S603
                                   "--json"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        killed = False
        deadline = time.monotonic() + 150
        while writer.poll() is None and time.monotonic() < deadline:
            async with anyio.create_task_group() as group:
                for i, client in enumerate(clients):
                    group.start_soon(search, client, f"topic{i} graphs")
            if not killed and len(committed_ids(data_dir, "notes")) >= 30 + 6 * BATCH:
                kill_engine(data_dir)  # kill -9 the engine mid-write
                killed = True
        stdout, stderr = writer.communicate(timeout=60)
        assert killed, "the indexing finished before the engine could be killed"
        # The CLI's connection was lost mid-batch; its client restarted the engine and resent the batch.
        assert writer.returncode == 0, stderr.decode()[-2000:]
        second_engine = read_pid(data_dir)
        assert second_engine not in (None, first_engine)

        rerun = cli(["index", "notes", str(tmp_path / "corpus.jsonl"), "--json"], env)
        assert rerun.returncode == 0, rerun.stderr
        report = json.loads(rerun.stdout)
        assert report["unchanged"] == CORPUS and report["added"] == 0  # the index is complete

        for client in clients:  # every server sees the whole committed collection
            await search(client, "topic3 graphs")
            listed = await client.call_tool("list_collections", {})
            assert [(x["name"], x["documents"]) for x in listed.structured_content["collections"]] == [
                ("notes", 30 + CORPUS)
            ]

    assert not failures, failures[:3]
    assert seen and seen <= seed | corpus  # every hit is a committed document of the collection
    with RemoteEngine(settings_for(data_dir)) as engine:
        status = engine.status()
        assert status["pid"] == second_engine
        assert status["embedder_loads"] == 1  # one model for three servers, a CLI and this test
        assert len(status["clients_seen"]) >= 5
        col = engine.collection("notes")
        assert col.info().documents == 30 + CORPUS
        engine.stop_engine()
    one, three = statistics.median(latencies["one"]), statistics.median(latencies["three"])
    sys.stderr.write(f"\nsearch latency (MCP stdio, hashing, 30 docs): 1 client median {one:.1f} ms, "
                     f"3 clients at once median {three:.1f} ms\n")  # fmt: skip
    (tmp_path / "latency.json").write_text(json.dumps({"one_ms": one, "three_ms": three}))


def test_stale_socket_and_pid_of_a_killed_engine_are_cleaned(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir)
    with RemoteEngine(settings) as engine:
        engine.collection("notes", create=True)
        dead = engine.status()["pid"]
    os.kill(dead, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(dead):
        time.sleep(0.05)
    assert socket_path(data_dir).exists() and read_pid(data_dir) == dead  # left behind by kill -9
    assert clean_stale_files(data_dir)  # the pid is gone: both files are removed
    assert not socket_path(data_dir).exists() and read_pid(data_dir) is None

    # Again, now left for a client to find: it connects (refused), cleans, starts a new engine.
    with RemoteEngine(settings) as engine:
        again = engine.status()["pid"]
    os.kill(again, signal.SIGKILL)
    while _alive(again):
        time.sleep(0.05)
    out = cli(["search", "notes", "anything", "--json"], env_for(data_dir))
    assert out.returncode == 0, out.stderr
    with RemoteEngine(settings) as engine:
        assert engine.status()["pid"] not in (dead, again)
        engine.stop_engine()


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap if it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_engine_takes_over_an_idle_engine_but_not_a_busy_one(tmp_path: Path) -> None:
    from diver.service import local_engine
    from diver.text.documents import Document

    settings = settings_for(tmp_path / "data")
    local = load_settings(data_dir=tmp_path / "data", embedding={"provider": "hashing"},
                          store={"write_batch_size": BATCH}, engine={"mode": "local"})  # fmt: skip
    with RemoteEngine(settings) as engine:
        engine.collection("notes", create=True).upsert([Document(id="a", text="alpha beta")])
        with pytest.raises(IndexLocked, match="diver engine"):
            local_engine(local)  # a client is connected: the engine keeps the directory
        other = settings.model_copy(update={"chunking": settings.chunking.model_copy(update={"max_tokens": 64})})
        with pytest.raises(EngineSettingsMismatch, match="chunking"):
            RemoteEngine(other)
    with local_engine(local) as owner:  # no client left: the engine exits and hands the directory over
        assert owner.collection("notes").info().documents == 1
        out = cli(["search", "notes", "alpha"], env_for(tmp_path / "data"))
        assert out.returncode != 0 and "engine.mode = 'local'" in out.stderr, out.stderr[-500:]


def test_engine_socket_falls_back_to_a_short_path_for_deep_data_dirs(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = socket_path(deep)
    assert len(str(path)) <= 100 and path.name.endswith(".sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    path.unlink()


def test_engine_exits_when_its_last_client_is_gone_for_the_idle_timeout(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data").model_copy(
        update={"engine": load_settings(engine={"mode": "shared", "idle_timeout_s": 1.0}).engine}
    )
    with RemoteEngine(settings) as engine:
        pid = engine.status()["pid"]
        time.sleep(2.5)  # a connected client keeps it alive past the timeout
        assert engine.collection_names() == [] and engine.status()["pid"] == pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)
    assert not socket_path(tmp_path / "data").exists() and read_pid(tmp_path / "data") is None  # tidy exit


def test_query_assembly_sees_the_engine_embedders_window(tmp_path: Path) -> None:
    """Through the shared engine, query assembly still knows what fits the embedder's window: a long
    query + expansion is embedded in parts (never silently cut), a short one whole, as in-process."""
    from diver.stages.assembly_search import AssemblyTarget

    settings = settings_for(tmp_path / "data").model_copy(
        update={"engine": load_settings(engine={"mode": "shared", "idle_timeout_s": 1.0}).engine}
    )
    with RemoteEngine(settings) as engine:
        col = engine.collection("win", create=True)
        budget = engine.embedder.chunk_token_budget()
        assert isinstance(budget, int) and budget > 16
        spans = engine.embedder.spanner.token_spans("two words")
        assert spans == [(0, 3), (4, 9)]
        fits = AssemblyTarget.for_collection(col).fits
        assert fits("a short query\n\na short expansion")
        assert not fits("word " * (budget + 5))
        engine.stop_engine()
