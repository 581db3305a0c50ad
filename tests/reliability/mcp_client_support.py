"""An in-process MCP client over a fresh data dir (hashing embedder, no LLM), and a state snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client

from diver.config import load_settings
from diver.server.app import build_server

BASE_DOCS = [
    {"id": f"base{i}", "text": f"Base document {i}\nabout triangles primes and graphs number {i}"}
    for i in range(5)
]


def settings_for(tmp_path: Path, **extra: Any) -> Any:
    roots = tmp_path / "root"
    roots.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "embedding": {"provider": "hashing"},
        "server": {"allowed_roots": [roots]},
    }
    values.update(extra)
    return load_settings(**values)


@asynccontextmanager
async def open_client(tmp_path: Path, **extra: Any) -> AsyncIterator[Client]:
    server = build_server(settings_for(tmp_path, **extra))
    async with Client(server) as client:
        result = await client.call_tool("index_documents", {"collection": "base", "documents": BASE_DOCS})
        assert not result.is_error, result.content
        yield client


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def snapshot(client: Client, data_dir: Path) -> Any:
    """What a bad call must not change: collections with their counts, and the collection folders."""
    listed = await client.call_tool("list_collections", {})
    infos = sorted((c["name"], c["documents"], c["chunks"]) for c in listed.structured_content["collections"])
    folders = sorted(p.name for p in (data_dir / "collections").iterdir())
    return infos, folders
