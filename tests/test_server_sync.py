"""index_path on a folder through the MCP SDK client: re-running it syncs (edit, delete, rename, add; the
embedder's calls counted), dry_run, include/exclude and .gitignore, and index_path(watch=true) following a
real file change until cancel_index stops it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_folder_sync import CountingEmbedder, change_folder, files_of, long_text

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.engine import Engine  # noqa: E402
from diver.server.app import build_server  # noqa: E402


def settings_for(tmp_path: Path, **server: Any) -> Any:
    return load_settings(
        data_dir=tmp_path / "data", embedding={"provider": "hashing"}, llm={"cache": False},
        server={"allowed_roots": [tmp_path / "roots"], "watch_debounce_ms": 200, **server},
    )  # fmt: skip


@asynccontextmanager
async def client_with(tmp_path: Path, embedder: Any = None, **server: Any) -> AsyncIterator[Client]:
    with Engine(settings_for(tmp_path, **server), embedder=embedder) as engine:
        async with Client(build_server(engine=engine)) as client:
            yield client


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, " ".join(getattr(c, "text", "") for c in result.content)
    return result.structured_content


def make_folder(tmp_path: Path) -> Path:
    root = tmp_path / "roots" / "docs"
    files = {
        "guide/intro.md": "# Intro\nalphaquokka starts here",
        "guide/setup.md": "# Setup\nbravonarwhal version one",
        "notes/old-name.md": long_text("charlieaxolotl", 600),
        "gone.txt": "deltapangolin will be deleted",
        "ünïcödé/naïve café.md": "echowombat in a unicode path",
    }
    for i in range(120):
        files[f"many/n{i:03d}.md"] = f"many file {i} word{i}w"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


async def ids_for(client: Client, query: str) -> list[str]:
    out = await call(client, "search", collection="docs", query=query, k=3, mode="bm25")
    return [hit["id"] for hit in out["hits"]]


async def test_rerunning_index_path_syncs_the_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    embedder = CountingEmbedder()
    async with client_with(tmp_path, embedder) as client:
        first = await call(client, "index_path", collection="docs", path="docs", wait=True)
        assert first["added"] == 125 and first["removed"] == 0
        change_folder(folder)
        embedder.embedded.clear()

        planned = await call(client, "index_path", collection="docs", path="docs", wait=True, dry_run=True)
        assert planned["changes"] == [
            "add added.md", "update guide/setup.md", "move notes/old-name.md -> notes/new-name.md", "delete gone.txt",
        ]  # fmt: skip
        assert embedder.embedded == [] and await ids_for(client, "deltapangolin") == ["gone.txt"]

        synced = await call(client, "index_path", collection="docs", path="docs", wait=True)
        counts = {k: synced[k] for k in ("added", "replaced", "moved", "removed", "unchanged")}
        assert counts == {"added": 1, "replaced": 1, "moved": 1, "removed": 1, "unchanged": 122}
        assert synced["changes"] is None
        assert len(embedder.embedded) == 2 and all("charlieaxolotl" not in t for t in embedder.embedded)
        assert await ids_for(client, "deltapangolin") == []
        assert await ids_for(client, "charlieaxolotl") == ["notes/new-name.md"]
        assert await ids_for(client, "foxtrotokapi") == ["added.md"]
        assert await ids_for(client, "echowombat") == ["ünïcödé/naïve café.md"]
        listed = await call(client, "list_collections")
        assert listed["collections"][0]["documents"] == len(files_of(folder)) and listed["watches"] == []


async def test_include_exclude_and_gitignore(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / ".gitignore").write_text("many/\n", encoding="utf-8")
    (folder / "node_modules" / "pkg").mkdir(parents=True)
    (folder / "node_modules" / "pkg" / "readme.md").write_text("nodemodulestext", encoding="utf-8")
    (folder / "logo.png").write_bytes(b"\x89PNG")
    async with client_with(tmp_path) as client:
        out = await call(client, "index_path", collection="docs", path="docs", wait=True,
                         include=["*.md"], exclude=["notes/"])  # fmt: skip
        assert out["added"] == 3  # guide/intro.md, guide/setup.md, the unicode one
        assert out["skipped"] == []  # logo.png is not in include: not counted as unsupported
        assert await ids_for(client, "nodemodulestext") == [] and await ids_for(client, "many") == []
        again = await call(client, "index_path", collection="docs", path="docs", wait=True)
        assert again["added"] == 2 and again["unchanged"] == 3  # notes/old-name.md and gone.txt now
        assert again["skipped"] == ["unsupported format .png: 1 file (logo.png)"]
        bad = await client.call_tool("index_path", {"collection": "docs", "path": "docs/gone.txt", "include": ["*.md"]})
        assert bad.is_error and "apply to a folder" in bad.content[0].text


async def wait_for(client: Client, query: str, expected: list[str], seconds: float = 30.0) -> None:
    with anyio.fail_after(seconds):
        while await ids_for(client, query) != expected:
            await anyio.sleep(0.1)


async def test_watch_follows_real_file_changes_until_cancelled(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    async with client_with(tmp_path) as client:
        started = await call(client, "index_path", collection="docs", path="docs", wait=True, watch=True)
        assert started["done"] and started["added"] == 125 and started["job"]
        listed = await call(client, "list_collections")
        assert listed["watches"] == [f"{started['job']} docs docs"]

        (folder / "guide" / "fresh.md").write_text("hotelgiraffe appears while watched", encoding="utf-8")
        await wait_for(client, "hotelgiraffe", ["guide/fresh.md"])
        (folder / "gone.txt").unlink()
        (folder / "notes" / "old-name.md").rename(folder / "notes" / "renamed.md")
        await wait_for(client, "deltapangolin", [])
        await wait_for(client, "charlieaxolotl", ["notes/renamed.md"])
        with anyio.fail_after(10):  # the counts follow the commit that made the change visible
            while (status := await call(client, "index_status", job=started["job"]))["removed"] < 1:
                await anyio.sleep(0.05)
        assert status["moved"] == 1 and status["removed"] == 1 and status["state"] == "watching"

        stopped = await call(client, "cancel_index", job=started["job"])
        assert stopped["state"] == "stopped"
        assert (await call(client, "list_collections"))["watches"] == []
        (folder / "late.md").write_text("indiaibex after the watch stopped", encoding="utf-8")
        await anyio.sleep(1.0)
        assert await ids_for(client, "indiaibex") == []


async def test_a_sync_job_cancels_between_batches_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import diver.server.write_tools as write_tools
    from diver.server import state as server_state

    monkeypatch.setattr(write_tools, "FOREGROUND_S", 0.0)
    monkeypatch.setattr(server_state, "JOB_BATCH", 5)
    folder = make_folder(tmp_path)
    async with client_with(tmp_path) as client:
        await call(client, "index_path", collection="docs", path="docs", wait=True)
        for i in range(600):
            (folder / "more" / f"m{i:03d}.md").parent.mkdir(exist_ok=True)
            (folder / "more" / f"m{i:03d}.md").write_text(f"more {i} juliettapir{i}", encoding="utf-8")
        (folder / "gone.txt").unlink()
        started = await call(client, "index_path", collection="docs", path="docs")
        final = await call(client, "cancel_index", job=started["job"])
        assert final["state"] == "cancelled" and final["added"] < 600 and final["removed"] == 0
        assert (final["documents_done"] - final["unchanged"]) % 5 == 0  # whole batches only
        again = await call(client, "index_path", collection="docs", path="docs", wait=True)
        assert again["added"] == 600 - final["added"] and again["removed"] == 1
        listed = await call(client, "list_collections")
        assert listed["collections"][0]["documents"] == len(files_of(folder))


async def test_watch_limits(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "roots" / "second").mkdir()
    (tmp_path / "roots" / "second" / "s.md").write_text("second folder", encoding="utf-8")
    async with client_with(tmp_path, max_watches=1) as client:
        started = await call(client, "index_path", collection="docs", path="docs", wait=True, watch=True)
        other = await client.call_tool("index_path", {"collection": "other", "path": "second", "watch": True})
        assert other.is_error and "server.max_watches" in other.content[0].text
        twice = await client.call_tool("index_path", {"collection": "docs", "path": "docs", "watch": True})
        assert twice.is_error and f"already by job {started['job']}" in twice.content[0].text
        one_file = await client.call_tool("index_path", {"collection": "docs", "path": "docs/gone.txt", "watch": True})
        assert one_file.is_error and "only a folder can be watched" in one_file.content[0].text
        both = await client.call_tool("index_path", {"collection": "docs", "path": "docs", "watch": True,
                                                     "dry_run": True})  # fmt: skip
        assert both.is_error and "exclude each other" in both.content[0].text
        await call(client, "cancel_index", job=started["job"])
