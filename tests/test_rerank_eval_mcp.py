"""The local cross-encoder (a real tiny one, built from the offline MiniLM weights) in `diver eval
--stages ...,rerank` and over MCP's deep_search; reranker choice over MCP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ce_support import tiny_cross_encoder

from diver.config import load_settings
from diver.evals.runner import EvalConfig, run_eval
from diver.evals.trec import read_run

pytest.importorskip("langgraph")


def _ce(**extra: Any) -> dict[str, Any]:
    return {"model": str(tiny_cross_encoder()), "device": "cpu", "batch_size": 8, **extra}


def test_eval_rerank_row_with_only_a_cross_encoder(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", embedding={"provider": "hashing"}, llm={"cache": False},
        rerank={"rerank_k": 12, "cross_encoder": _ce()},
    )  # fmt: skip
    config = EvalConfig(benchmark="theoremqa-theorems-offline", stages=["hybrid", "rerank"], limit_queries=2,
                        top_k=20, out_dir=tmp_path / "run", progress=False)  # fmt: skip
    result = run_eval(config, settings)
    domain = "theoremqa-theorems-offline"
    hybrid = read_run(tmp_path / "run" / f"run.hybrid.{domain}.trec")
    reranked = read_run(tmp_path / "run" / f"run.rerank.{domain}.trec")
    assert set(reranked) == set(hybrid) and len(reranked) == 2
    for qid, ranking in reranked.items():
        top = [d for d, _ in ranking[:12]]
        assert set(top) == {d for d, _ in hybrid[qid][:12]}  # the hybrid top-12, reordered
        assert [d for d, _ in ranking[12:]] == [d for d, _ in hybrid[qid][12:20]]
    info = json.loads((tmp_path / "run" / "state.json").read_text())["finished"][f"rerank/{domain}"]
    assert info["llm_calls"] == 0 and info["rerankers"] == {"cross_encoder": 2}
    assert "rerank" in result.table


mcp = pytest.importorskip("mcp")


async def test_mcp_deep_search_with_the_cross_encoder(tmp_path: Path) -> None:
    from mcp import Client
    from test_server_tools import chat_factory, make_settings, theorem_docs

    from diver.server.app import build_server

    docs = theorem_docs()
    # no LLM at all: the agent loop retrieves, the local cross-encoder reranks (the default)
    settings = make_settings(tmp_path, llm={"cache": False}, rerank={"cross_encoder": _ce()})
    async with Client(build_server(settings)) as client:
        assert not (await client.call_tool("index_documents", {"collection": "theorems", "documents": docs})).is_error
        result = await client.call_tool("deep_search", {"collection": "theorems", "query": "socks pairs", "k": 4})
        out = result.structured_content
        assert not result.is_error and out["rerankers"] == ["cross_encoder"] and "cross_encoder" in out["stages"]
        assert "only a local cross-encoder" in out["rerankers_why"]
        assert len(out["hits"]) == 4 and all("cross_encoder_model" in h["scores"] for h in out["hits"])
        off = await client.call_tool("deep_search", {"collection": "theorems", "query": "socks", "rerank": False})
        assert off.structured_content["rerankers"] == [] and "rerank: disabled" in off.structured_content["skipped"]
    # a server LLM: the graph runs cross-encoder first, then groupwise on its top, merged with given weights
    (tmp_path / "b").mkdir()
    settings = make_settings(tmp_path / "b", rerank={"cross_encoder": _ce(llm_k=3)})
    async with Client(build_server(settings, chat_factory=chat_factory)) as client:
        assert not (await client.call_tool("index_documents", {"collection": "theorems", "documents": docs})).is_error
        result = await client.call_tool("deep_search", {
            "collection": "theorems", "query": "How many socks guarantee a pair?", "k": 4, "max_rounds": 0,
            "rerankers": ["pointwise", "cross-encoder"], "rerank_weights": {"pointwise": 0.5}})  # fmt: skip
        out = result.structured_content
        assert not result.is_error, out
        assert out["rerankers"] == ["cross_encoder", "pointwise"] and out["rerankers_why"].startswith("asked for")
        assert out["llm_calls"] == 3  # pointwise on the cross-encoder's top 3 only
        assert out["hits"][0]["id"] == "Pigeonhole Principle"  # the scripted LLM scores it 9, the others 1
