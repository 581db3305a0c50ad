"""Hostile or broken input, through the MCP tools (else the engine): a clear error and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp_client_support import BASE_DOCS, open_client, settings_for, snapshot, text_of

from diver.engine import Engine
from diver.errors import InputError
from diver.text.documents import Document, make_document
from diver.text.ingest import read_documents

pytest.importorskip("mcp")

BAD_QUERIES = [
    ("", "query is empty"),
    ("   \n\t ", "query is empty"),
    ("x" * 1_000_000, "the limit is 20000"),
    ("abc\x00def", "NUL"),
]
BAD_K = [(0, "greater than or equal to 1"), (-1, "greater than or equal to 1"), (10**9, "less than or equal to 1000")]
BAD_NAMES = ["../etc", "a/b", "..", "x" * 300, "théorèmes", "ab", "-abc", "a b c", "name\x00x", "名前名前"]


async def assert_refused(client, data_dir: Path, tool: str, args: dict, *needles: str) -> str:
    before = await snapshot(client, data_dir)
    result = await client.call_tool(tool, args)
    message = text_of(result)
    assert result.is_error, (tool, args)
    for needle in needles:
        assert needle in message, (needle, message[:500])
    assert "Traceback" not in message and len(message) < 5000
    assert await snapshot(client, data_dir) == before, (tool, message)
    return message


async def test_bad_queries_k_and_collection_names(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with open_client(tmp_path) as client:
        for query, needle in BAD_QUERIES:
            await assert_refused(client, data_dir, "search", {"collection": "base", "query": query}, needle)
        garbage = bytes(range(256)).decode("latin-1") * 4  # binary garbage as text: searched, not crashed
        result = await client.call_tool("search", {"collection": "base", "query": garbage.replace("\x00", "")})
        assert not result.is_error, text_of(result)
        for k, needle in BAD_K:
            await assert_refused(client, data_dir, "search", {"collection": "base", "query": "triangles", "k": k}, needle)
        for name in BAD_NAMES:
            await assert_refused(client, data_dir, "search", {"collection": name, "query": "x"}, "collection")
            await assert_refused(client, data_dir, "index_documents",
                                 {"collection": name, "documents": BASE_DOCS[:1]}, "collection")  # fmt: skip
        await assert_refused(client, data_dir, "search", {"collection": "nope", "query": "x"}, "unknown collection")


def test_engine_caps_huge_k_and_says_so(tmp_path: Path) -> None:
    with Engine(settings_for(tmp_path)) as engine:
        col = engine.collection("base", create=True)
        col.upsert([Document(id=d["id"], text=d["text"]) for d in BASE_DOCS])
        result = col.search("triangles", k=10**9)
        assert result.k == 1000 and any("capped" in n for n in result.notes)
        for k in (0, -1, True, 2.5):
            with pytest.raises(InputError, match="k must be a positive integer"):
                col.search("triangles", k=k)  # type: ignore[arg-type]


async def test_bad_documents_index_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ok = {"id": "fine", "text": "a fine document"}
    async with open_client(tmp_path) as client:
        cases = [
            ([{"id": "e", "text": ""}], "text is empty"),
            ([{"id": "w", "text": " \n\t "}], "text is empty"),
            ([{"id": "big", "text": "x" * 50_000_000}], "exceeds the limit of 5000000 bytes"),
            ([{"id": "surrogate", "text": "bad \udcff text"}, ok], ""),
            ([{"id": "", "text": "no id"}], "id"),
            ([{"id": "nul\x00id", "text": "t"}], "control characters"),
            ([{"id": "m", "text": "t", "metadata": {"blob": "y" * 70_000}}], "metadata is"),
            ([], "documents is empty"),
            ([ok] * 1001, "the limit is 1000"),
        ]
        for docs, needle in cases:
            before = await snapshot(client, data_dir)
            result = await client.call_tool("index_documents", {"collection": "base", "documents": docs})
            if needle:
                assert result.is_error and needle in text_of(result), (needle, text_of(result)[:300])
                assert await snapshot(client, data_dir) == before
            else:  # invalid UTF-8 (a lone surrogate) is replaced, never stored raw
                assert not result.is_error, text_of(result)
                got = await client.call_tool("get_document", {"collection": "base", "id": "surrogate"})
                assert "\udcff" not in got.structured_content["text"]
                json.dumps(got.structured_content).encode("utf-8")
        # NUL bytes inside text are cleaned, duplicates: last wins and is reported
        result = await client.call_tool("index_documents", {"collection": "base", "documents": [
            {"id": "n", "text": "nul\x00byte"}, {"id": "dup", "text": "first"}, {"id": "dup", "text": "second"}]})  # fmt: skip
        assert not result.is_error and result.structured_content["duplicate_ids"] == ["dup"]
        got = await client.call_tool("get_document", {"collection": "base", "id": "n"})
        assert got.structured_content["text"] == "nulbyte"
        got = await client.call_tool("get_document", {"collection": "base", "id": "dup"})
        assert got.structured_content["text"] == "second"


def test_non_json_metadata_refused_by_the_engine_api() -> None:
    for metadata in ({"when": object()}, {"s": {1, 2}}, {"b": b"bytes"}, {"inf": float("inf")}):
        with pytest.raises(InputError, match="JSON-serialisable"):
            make_document("m", "text", metadata)


def test_broken_jsonl_lines_are_reported_by_line_number(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "alpha"}).encode(),
        b"{broken json",
        b'{"id": "b", "text": "beta"',
        b"\xff\xfe not utf-8",
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"id": "c"}).encode(),
        json.dumps({"id": "d", "text": "delta", "extra": 1}).encode(),
        json.dumps({"id": "e", "text": "epsilon"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, skipped = read_documents(path, max_bytes=1000)
    assert [d.id for d in docs] == ["a", "e"]
    for number in (2, 3, 4, 5, 6, 7):
        assert any(f"line {number}:" in s for s in skipped), (number, skipped)
