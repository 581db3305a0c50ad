"""The agent-facing MCP tools through the SDK's Client (hashing embedder, no LLM configured): the DIVER loop
with the agent as reasoner, budgets and the compact form, filters, citations, chunk windows, background
indexing jobs, cancel, read-only."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.index.collection import Collection  # noqa: E402
from diver.server.app import build_server  # noqa: E402

THEOREMS: dict[str, str] = json.loads(Path("data/theoremqa/all_theorems.json").read_text(encoding="utf-8"))
QUERY = "Mary bakes 10 cookies in three shapes. What is the smallest possible count of the most common shape?"
EXPANSION = "Pigeonhole principle: putting n items into m boxes, some box holds at least ceil(n/m) items."
needs_core = pytest.mark.skipif(
    "where" not in inspect.signature(Collection.search_many).parameters, reason="core filters not landed yet"
)


def settings_for(tmp_path: Path, **server: Any) -> Any:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    return load_settings(data_dir=tmp_path / "data", embedding={"provider": "hashing"}, llm={"cache": False},
                         server={"allowed_roots": [docs], **server})  # fmt: skip


def corpus(n: int = 200) -> list[dict[str, Any]]:
    """``n`` theorems (the pigeonhole principle among them); 1% are French (lang=fr), sources under
    theorems/<first letter>/."""
    names = ["Pigeonhole Principle", *[t for t in sorted(THEOREMS) if t != "Pigeonhole Principle"][: n - 1]]
    return [{"id": name, "text": f"{name}\n{THEOREMS[name]}",
             "metadata": {"lang": "fr" if i % 100 == 57 else "en", "year": 2000 + i % 25,
                          "source": f"theorems/{name[0].lower()}/{i}.md"}}
            for i, name in enumerate(names)]  # fmt: skip


@asynccontextmanager
async def client_for(tmp_path: Path, docs: list[dict[str, Any]] | None = None, **server: Any) -> AsyncIterator[Client]:
    async with Client(build_server(settings_for(tmp_path, **server))) as client:
        if docs:
            for start in range(0, len(docs), 500):
                result = await client.call_tool(
                    "index_documents", {"collection": "theorems", "documents": docs[start : start + 500]}
                )
                assert not result.is_error, result.content
        yield client


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, " ".join(getattr(c, "text", "") for c in result.content)
    return result.structured_content


async def test_the_agent_drives_the_diver_loop(tmp_path: Path) -> None:
    async with client_for(tmp_path, corpus(120)) as client:
        first = await call(client, "deep_search", collection="theorems", query=QUERY)
        assert first["reasoner"] == "none" and "no LLM endpoint" in first["reasoner_why"]
        assert first["round_no"] == 0 and not first["converged"] and first["round"]
        assert "expansions=[your passage]" in first["next_step"] and first["hits"]
        assert 1 <= len(first["feedback"]) <= 5 and all(f["id"] and f["text"] for f in first["feedback"])

        second = await call(client, "deep_search", collection="theorems", query=QUERY,
                            expansions=[EXPANSION], round=first["round"])  # fmt: skip
        assert second["reasoner"] == "agent" and second["round_no"] == 1
        # the agent's expansion lifts the theorem it names (hashing embedder: dense is noise, so top 5)
        def rank(result: dict[str, Any]) -> int:
            ids = [h["id"] for h in result["hits"]]
            return ids.index("Pigeonhole Principle") if "Pigeonhole Principle" in ids else len(ids)

        assert rank(second) < 5 and rank(second) < rank(first)
        assert not {f["id"] for f in second["feedback"]} & {f["id"] for f in first["feedback"]}

        third = await call(client, "deep_search", collection="theorems", query=QUERY,
                           expansions=[EXPANSION + " Generalized pigeonhole principle."], round=second["round"])  # fmt: skip
        assert third["round_no"] == 2 and third["converged"] and third["next_step"].startswith("Stop")
        assert third["overlap"] is not None and third["feedback"] == []

        wrong = await client.call_tool("deep_search", {"collection": "theorems", "query": "another question",
                                                       "round": second["round"]})  # fmt: skip
        assert wrong.is_error and "another collection or query" in wrong.content[0].text
        bogus = await client.call_tool("deep_search", {"collection": "theorems", "query": QUERY, "round": "x!"})
        assert bogus.is_error and "not a token returned by deep_search" in bogus.content[0].text


async def test_search_with_expansions_budgets_and_compact_form(tmp_path: Path) -> None:
    async with client_for(tmp_path, corpus(60)) as client:
        plain = await call(client, "search", collection="theorems", query=QUERY, k=5)
        assert plain["assembly"] is None
        expanded = await call(client, "search", collection="theorems", query=QUERY, k=5, expansions=[EXPANSION])
        assert expanded["assembly"] and "Pigeonhole Principle" in [h["id"] for h in expanded["hits"][:3]]

        short = await call(client, "search", collection="theorems", query=QUERY, k=5, hit_chars=100)
        assert all(len(h["highlight"]) <= 100 for h in short["hits"])
        assert any("hit_chars=100" in c for c in short["cut"])
        small = await call(client, "search", collection="theorems", query=QUERY, k=10, max_chars=1500)
        assert 1 <= len(small["hits"]) < 10 and any("dropped to fit max_chars=1500" in c for c in small["cut"])
        assert len(json.dumps(small["hits"])) <= 1500 + 200

        ranked = await call(client, "search", collection="theorems", query=QUERY, k=8, format="compact",
                            expansions=[EXPANSION])  # fmt: skip
        assert ranked["hits"] == [] and [c["n"] for c in ranked["candidates"]] == list(range(1, 9))
        assert "Pigeonhole Principle" in [c["id"] for c in ranked["candidates"][:3]] and ranked["candidates"][0]["text"]


@needs_core
async def test_selective_filters_apply_before_the_top_k_cut(tmp_path: Path) -> None:
    docs = corpus(200)  # 2 of 200 (1%) are French
    french = {d["id"] for d in docs if d["metadata"]["lang"] == "fr"}
    assert len(french) == 2
    async with client_for(tmp_path, docs) as client:
        for mode in ("bm25", "dense", "hybrid"):
            out = await call(client, "search", collection="theorems", query=QUERY, k=2, mode=mode,
                             where={"lang": "fr"})  # fmt: skip
            assert {h["id"] for h in out["hits"]} == french, mode
        both = await call(client, "search", collection="theorems", query=QUERY, k=10,
                          where={"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]})  # fmt: skip
        assert len(both["hits"]) == 10
        assert all(h["metadata"]["lang"] == "en" and h["metadata"]["year"] >= 2020 for h in both["hits"])
        scoped = await call(client, "search", collection="theorems", query=QUERY, k=5, source="theorems/p/")
        assert scoped["hits"] and all(h["source"].startswith("theorems/p/") for h in scoped["hits"])
        deep = await call(client, "deep_search", collection="theorems", query=QUERY, k=2, where={"lang": "fr"},
                          expansions=[EXPANSION])  # fmt: skip
        assert {h["id"] for h in deep["hits"]} == french
        assert {f["id"] for f in deep["feedback"]} <= french


@needs_core
async def test_citations_and_chunk_windows(tmp_path: Path) -> None:
    long_text = "Long notes\n" + " ".join(
        f"Paragraph {i} talks about topic {i} and lemma {i}." if i != 37 else
        "Paragraph 37 states the pigeonhole principle for cookies and boxes." for i in range(80)
    )  # fmt: skip
    doc = {"id": "long", "text": long_text, "metadata": {"source": "notes/long.md"}}
    async with client_for(tmp_path, [doc, *corpus(20)]) as client:
        out = await call(client, "search", collection="theorems", query="pigeonhole principle cookies boxes", k=3,
                         mode="bm25")  # fmt: skip
        hit = next(h for h in out["hits"] if h["id"] == "long")
        assert hit["source"] == "notes/long.md" and hit["chunk"] is not None and hit["chunk"] > 0
        start, end = hit["span"]
        assert long_text[start:end].startswith(hit["highlight"][:50]) and "Paragraph 37" in long_text[start:end]
        assert "bm25" in hit["scores"]

        window = await call(client, "get_document", collection="theorems", id="long",
                            around_chunk=hit["chunk"], window=1)  # fmt: skip
        indexes = [c["index"] for c in window["chunks"]]
        assert hit["chunk"] in indexes and indexes == list(range(indexes[0], indexes[0] + len(indexes)))
        assert window["text"] == "" and window["chunk_count"] > hit["chunk"]
        for chunk in window["chunks"]:
            assert long_text[chunk["start"] : chunk["end"]] == chunk["text"]
        bad = await client.call_tool("get_document", {"collection": "theorems", "id": "long", "around_chunk": 999})
        assert bad.is_error and "chunk(s)" in bad.content[0].text


def write_jsonl(folder: Path, n: int) -> Path:
    path = folder / "many.jsonl"
    rows = [json.dumps({"id": f"d{i}", "text": f"document {i} about topic {i % 17}"}) for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def test_index_path_becomes_a_background_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diver.server.write_tools as write_tools

    monkeypatch.setattr(write_tools, "FOREGROUND_S", 0.0)
    async with client_for(tmp_path) as client:
        write_jsonl(tmp_path / "docs", 300)
        started = await call(client, "index_path", collection="bulk", path="many.jsonl")
        assert started["job"]
        status = started
        for _ in range(400):
            status = await call(client, "index_status", job=started["job"])
            if status["state"] != "running":
                break
            await anyio.sleep(0.05)
        assert status["state"] == "done" and status["documents_done"] == status["files"] == 300
        assert status["added"] == 300 and status["chunks"] >= 300 and status["eta_s"] == 0.0
        assert status["rate_docs_per_s"] > 0
        listed = await call(client, "list_collections")
        assert {c["name"]: c["documents"] for c in listed["collections"]} == {"bulk": 300}
        missing = await client.call_tool("index_status", {"job": "nope"})
        assert missing.is_error and "no indexing job 'nope'" in missing.content[0].text


async def test_cancel_index_keeps_what_was_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import diver.server.write_tools as write_tools
    from diver.server import state as server_state

    monkeypatch.setattr(write_tools, "FOREGROUND_S", 0.0)
    monkeypatch.setattr(server_state, "JOB_BATCH", 5)
    async with client_for(tmp_path) as client:
        write_jsonl(tmp_path / "docs", 1500)
        started = await call(client, "index_path", collection="bulk", path="many.jsonl")
        final = await call(client, "cancel_index", job=started["job"])
        assert final["state"] == "cancelled" and final["documents_done"] < final["files"] == 1500
        assert final["documents_done"] % 5 == 0  # whole batches only
        listed = await call(client, "list_collections")
        counts = {c["name"]: c["documents"] for c in listed["collections"]}
        assert counts.get("bulk", 0) == final["documents_done"]
        again = await call(client, "index_path", collection="bulk", path="many.jsonl", wait=True)
        assert again["done"] and again["unchanged"] == final["documents_done"]
        assert again["added"] == 1500 - final["documents_done"]


async def test_read_only_server_registers_no_write_tools(tmp_path: Path) -> None:
    async with client_for(tmp_path, read_only=True) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"search", "deep_search", "list_collections", "get_document"}
        result = await client.call_tool("index_documents", {"collection": "x", "documents": []})
        assert result.is_error


async def test_deep_search_prompt_teaches_the_protocol(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        prompt = await client.get_prompt("diver_deep_search", {"question": "q?", "collection": "theorems"})
        text = prompt.messages[0].content.text
        assert "expansions=[your passage]" in text and "`round` token" in text and "converged" in text
