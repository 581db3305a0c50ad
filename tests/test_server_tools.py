"""MCP tools through the SDK's in-process Client (hashing embedder, scripted LLM: no model, no network)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from llm_fakes import ScriptedChatModel

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.server.app import build_server  # noqa: E402

THEOREMS = json.loads(Path("data/theoremqa/all_theorems.json").read_text(encoding="utf-8"))
NAMES = ["Kraft inequality", "Pigeonhole Principle", "Fermat's little theorem", "Bayes' theorem"]


def theorem_docs(names: list[str] = NAMES) -> list[dict[str, Any]]:
    return [{"id": n, "text": f"{n}\n{THEOREMS[n]}", "metadata": {"source": "theoremqa"}} for n in names]


def reply(prompt: str) -> str:
    if "Relevance score: X" in prompt:
        return "Relevance score: 9" if "Pigeonhole" in prompt else "Relevance score: 1"
    if "candidate documents" in prompt:
        count = int(re.search(r"(\d+) candidate documents", prompt).group(1))  # type: ignore[union-attr]
        return "```json\n" + str(list(range(1, count + 1))) + "\n```"
    return "The pigeonhole principle: n items in m < n boxes means a box holds two items."


def chat_factory(_settings: Any) -> ScriptedChatModel:
    return ScriptedChatModel(reply=reply, prompts=[])


def make_settings(tmp_path: Path, **extra: Any) -> Any:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "embedding": {"provider": "hashing"},
        "llm": {
            "cache": False,
            "expander": {"model": "fake-expander", "max_retries": 0},
            "reranker": {"model": "fake-reranker", "max_retries": 0},
        },
        "server": {"allowed_roots": [docs]},
    }
    values.update(extra)
    return load_settings(**values)


@asynccontextmanager
async def open_client(tmp_path: Path) -> AsyncIterator[Client]:
    """A connected client over a fresh data dir holding collection 'theorems' (entered in the test's task:
    anyio cancel scopes cannot span a fixture's setup and teardown)."""
    server = build_server(make_settings(tmp_path), chat_factory=chat_factory)
    async with Client(server) as connected:
        result = await connected.call_tool(
            "index_documents", {"collection": "theorems", "documents": theorem_docs()}
        )
        assert not result.is_error, result.content
        yield connected


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_lists_small_tool_schemas(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {
            "search", "deep_search", "index_documents", "index_path", "index_status", "cancel_index",
            "list_collections", "get_document", "delete_documents",
        }  # fmt: skip
        assert set(tools["search"].input_schema["properties"]) == {
            "collection", "query", "k", "mode", "expansions", "where", "source", "format", "max_chars",
            "hit_chars",
        }  # fmt: skip
        assert set(tools["deep_search"].input_schema["properties"]) == {
            "collection", "query", "k", "expansions", "round", "where", "source", "max_rounds", "rerank",
            "rerankers", "rerank_weights", "max_chars", "hit_chars",
        }  # fmt: skip
        assert all(len(json.dumps(t.input_schema)) < 4000 for t in tools.values())
        assert tools["search"].output_schema is not None
        assert all(len(t.description or "") > 40 for t in tools.values())


async def test_search_returns_structured_hits(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        result = await client.call_tool(
            "search", {"collection": "theorems", "query": "pigeonhole principle boxes", "k": 3}
        )
        assert not result.is_error
        hits = result.structured_content["hits"]
        assert hits[0]["id"] == "Pigeonhole Principle" and hits[0]["title"] == "Pigeonhole Principle"
        assert hits[0]["metadata"] == {"source": "theoremqa"} and hits[0]["highlight"]
        assert len(hits) == 3


async def test_deep_search_reports_trace_and_progress(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        result = await client.call_tool(
            "deep_search",
            {"collection": "theorems", "query": "How many socks guarantee a pair?", "k": 3, "max_rounds": 1},
            progress_callback=on_progress,
        )
        assert not result.is_error, text_of(result)
        out = result.structured_content
        assert out["hits"][0]["id"] == "Pigeonhole Principle"
        assert out["rounds"] == 1 and out["expansions"][0]["expansions"]
        assert out["stop_reason"] and out["llm_calls"] > 0 and "pointwise" in out["stages"]
        values = [p[0] for p in progress]
        assert len(values) >= 4 and values == sorted(set(values))
        assert all(p[2] for p in progress)
        assert any("expansion round 1" in (p[2] or "") for p in progress)


async def test_deep_search_without_rerank_reports_skipped(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        result = await client.call_tool(
            "deep_search",
            {"collection": "theorems", "query": "socks pairs", "max_rounds": 0, "rerank": False},
        )
        assert not result.is_error, text_of(result)
        out = result.structured_content
        assert out["llm_calls"] == 0 and out["expansions"] == []
        assert "pointwise" not in out["stages"] and out["skipped"]


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("search", {"collection": "theorems", "query": "  "}, "query is empty"),
        ("search", {"collection": "theorems", "query": "x", "k": 0}, "greater than or equal to 1"),
        ("search", {"collection": "nope", "query": "x"}, "unknown collection 'nope'"),
        ("search", {"collection": "../etc", "query": "x"}, "invalid collection name"),
        ("deep_search", {"collection": "nope", "query": "x"}, "unknown collection"),
        ("deep_search", {"collection": "theorems", "query": ""}, "query is empty"),
        ("get_document", {"collection": "theorems", "id": "missing"}, "no document 'missing'"),
        ("index_documents", {"collection": "theorems", "documents": []}, "documents is empty"),
        (
            "index_documents",
            {"collection": "theorems", "documents": [{"id": "a", "text": " "}]},
            "empty after cleaning",
        ),
        ("index_path", {"collection": "theorems", "path": "/etc/passwd"}, "outside the allowed roots"),
        ("index_path", {"collection": "theorems", "path": "../x"}, "'..'"),
        ("delete_documents", {"collection": "theorems", "ids": []}, "at least 1"),
    ],
)
async def test_bad_input_is_a_tool_error(tmp_path: Path, tool: str, args: dict, message: str) -> None:
    async with open_client(tmp_path) as client:
        result = await client.call_tool(tool, args)
        assert result.is_error
        text = text_of(result)
        assert message in text and "Traceback" not in text


async def test_index_path_get_delete_and_list(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        docs = tmp_path / "docs"
        (docs / "notes").mkdir()
        (docs / "notes" / "euler.md").write_text("Euler's formula\ne^{i pi} + 1 = 0", encoding="utf-8")
        (docs / "notes" / "blob.txt").write_bytes(b"\x00\x01binary")
        os.symlink("/etc/hostname", docs / "notes" / "escape.txt")
        (docs / "more.jsonl").write_text('{"id": "j1", "text": "jsonl doc"}\n{broken\n', encoding="utf-8")
        result = await client.call_tool("index_path", {"collection": "notes", "path": "notes", "wait": True})
        assert not result.is_error, text_of(result)
        out = result.structured_content
        assert out["added"] == 1
        assert any("blob.txt: binary" in s for s in out["skipped"])
        assert any("escape.txt: symlink points outside" in s for s in out["skipped"])
        result = await client.call_tool(
            "index_path", {"collection": "notes", "path": str(docs / "more.jsonl"), "wait": True}
        )
        assert result.structured_content["added"] == 1
        assert result.structured_content["skipped"] == [
            "more.jsonl line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2)"
        ]

        got = await client.call_tool(
            "get_document", {"collection": "notes", "id": "euler.md", "max_chars": 100}
        )
        assert (
            got.structured_content["text"].startswith("Euler's formula")
            and not got.structured_content["truncated"]
        )
        listed = (await client.call_tool("list_collections", {})).structured_content["collections"]
        assert {c["name"]: c["documents"] for c in listed} == {"notes": 2, "theorems": 4}
        deleted = await client.call_tool("delete_documents", {"collection": "notes", "ids": ["j1", "nope"]})
        assert deleted.structured_content == {"collection": "notes", "requested": 2, "deleted": 1}


async def test_reindex_is_idempotent(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        result = await client.call_tool(
            "index_documents", {"collection": "theorems", "documents": theorem_docs()}
        )
        assert result.structured_content["unchanged"] == 4 and result.structured_content["added"] == 0


async def test_guide_resource_and_prompt(tmp_path: Path) -> None:
    async with open_client(tmp_path) as client:
        resource = await client.read_resource("diver://guide")
        assert "deep_search" in resource.contents[0].text
        prompt = await client.get_prompt("research", {"question": "q?", "collection": "theorems"})
        assert "search" in prompt.messages[0].content.text


async def test_state_errors_are_protocol_errors(tmp_path: Path) -> None:
    from diver.engine import Engine

    settings = make_settings(tmp_path)
    with Engine(settings) as engine:
        engine.collection("broken", create=True)
    (settings.data_dir / "collections" / "broken" / "meta.json").write_text("{", encoding="utf-8")
    async with Client(build_server(settings)) as client:
        with pytest.raises(MCPError, match="CorruptIndex"):
            await client.call_tool("search", {"collection": "broken", "query": "x"})
