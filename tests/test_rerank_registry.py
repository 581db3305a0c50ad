"""The reranker registry: a toy reranker defined and registered in this one file shows up in the graph,
the MCP schema and ``diver eval`` without touching another file; names, weights and the docs table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_fakes import FakeRetriever, ScriptedChatModel
from pydantic import Field

from diver.config import load_settings
from diver.errors import ConfigError
from diver.stages.rerank import registry
from diver.stages.rerank.base import RerankerSpec, RerankRequest, RerankResult

pytest.importorskip("langgraph")

DOCS = {f"d{i}": "word " * (i + 1) + f"topic{i} pigeons" for i in range(12)}
QUERY = "pigeons topic3"


class ToyResult(RerankResult):
    lengths: dict[str, float] = Field(default_factory=dict)

    def hit_scores(self, doc_id: str) -> dict[str, float]:
        return {"toy_length": self.lengths[doc_id]} if doc_id in self.lengths else {}


def run_toy(request: RerankRequest) -> ToyResult:
    """Longest text first (sync: the node runs it in a worker thread)."""
    lengths = {h.id: float(len(request.texts[h.id])) for h in request.candidates}
    return ToyResult(order=sorted(lengths, key=lambda d: -lengths[d]), lengths=lengths)


TOY = RerankerSpec(name="toy", description="Test only: the longest text first.", run=run_toy, result=ToyResult,
                   needs_llm=False, default_weight=0.5)  # fmt: skip


@pytest.fixture
def toy() -> Iterator[RerankerSpec]:
    registry.register(TOY)
    try:
        yield TOY
    finally:
        registry.unregister("toy")


def _settings(tmp_path: Path, **extra: Any) -> Any:
    return load_settings(data_dir=tmp_path / "data", llm={"cache": False}, **extra)


async def test_a_toy_reranker_runs_in_the_graph_and_orders_the_result(tmp_path: Path, toy: RerankerSpec) -> None:
    from diver.graph.run import arun_deep_search

    events: list[dict[str, Any]] = []
    result = await arun_deep_search(FakeRetriever(DOCS), QUERY, _settings(tmp_path),
                                    context={"k": 12, "expand": False, "rerankers": ["toy"]},
                                    progress=events.append)  # fmt: skip
    ids = [h.id for h in result.hits]
    assert ids == sorted(DOCS, key=lambda d: -len(DOCS[d]))
    assert result.rerankers == ["toy"] and result.stages == ["retrieve", "toy"] and not result.retrieval_only
    assert all("toy_length" in h.scores for h in result.hits)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert {"stage_started", "stage_done"} <= {e["event"] for e in events if e.get("stage") == "toy"}


async def test_the_mcp_schema_lists_the_toy_reranker(tmp_path: Path, toy: RerankerSpec) -> None:
    pytest.importorskip("mcp")
    from mcp import Client
    from test_server_tools import chat_factory, make_settings

    from diver.server.app import build_server

    server = build_server(make_settings(tmp_path), chat_factory=chat_factory)
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = json.dumps(tools["deep_search"].input_schema)
    assert '"toy"' in schema and '"cross_encoder"' in schema and '"cross-encoder"' not in schema


def test_diver_eval_accepts_the_toy_reranker_as_a_stage(tmp_path: Path, toy: RerankerSpec) -> None:
    from diver.evals.runner import EvalConfig, run_eval
    from diver.evals.trec import read_run

    settings = _settings(tmp_path, embedding={"provider": "hashing"}, rerank={"rerank_k": 6})
    config = EvalConfig(benchmark="theoremqa-theorems-offline", stages=["hybrid", "toy"], limit_queries=2,
                        top_k=10, out_dir=tmp_path / "run", progress=False)  # fmt: skip
    run_eval(config, settings, chat_factory=lambda _s: ScriptedChatModel(reply=lambda p: "", prompts=[]))
    domain = "theoremqa-theorems-offline"
    toy_run = read_run(tmp_path / "run" / f"run.toy.{domain}.trec")
    hybrid = read_run(tmp_path / "run" / f"run.hybrid.{domain}.trec")
    assert set(toy_run) == set(hybrid)
    info = json.loads((tmp_path / "run" / "state.json").read_text())["finished"][f"toy/{domain}"]
    assert info["rerankers"] == {"toy": 2}


def test_names_are_checked_and_the_old_spelling_is_normalised(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'groupwise'"):
        registry.get("groupwse")
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(registry.get("pointwise"))
    assert registry.get("cross-encoder").name == "cross_encoder"
    rerank = _settings(tmp_path, rerank={"rerankers": ["cross-encoder"], "provider": "cross-encoder"}).rerank
    assert rerank.rerankers == ["cross_encoder"] and rerank.provider == "cross_encoder"
    from diver.stages.rerank.choice import choose_rerankers

    with pytest.raises(ConfigError, match="unknown reranker 'nope'"):
        choose_rerankers(_settings(tmp_path, rerank={"rerankers": ["nope"]}).rerank, True)


def test_merge_weights_from_defaults_knobs_and_the_weights_dict(tmp_path: Path, toy: RerankerSpec) -> None:
    weights = registry.merge_weights(_settings(tmp_path).rerank)
    assert weights == {"pointwise": 0.6, "listwise": 0.4, "groupwise": 0.4, "toy": 0.5}
    rerank = _settings(tmp_path, rerank={"pointwise_weight": 0.3, "weights": {"toy": 0.1, "listwise": 0.2}}).rerank
    assert registry.merge_weights(rerank) == {"pointwise": 0.3, "listwise": 0.2, "groupwise": 0.4, "toy": 0.1}


def test_the_pipeline_docs_rerankers_table_is_up_to_date() -> None:
    from diver.stages.rerank.docs import with_table

    path = Path(__file__).resolve().parents[1] / "docs" / "PIPELINE.md"
    text = path.read_text(encoding="utf-8")
    assert text == with_table(text), "run: python -m diver.stages.rerank.docs"


def test_an_unknown_reranker_is_reported_at_graph_and_server_start_up(tmp_path: Path) -> None:
    from diver.graph.graph import build_graph
    from diver.graph.resources import Provider

    bad = _settings(tmp_path, rerank={"rerankers": ["pointwize"]})
    with pytest.raises(ConfigError, match="did you mean 'pointwise'"):
        build_graph(Provider(settings=bad))
    pytest.importorskip("mcp")
    from diver.server.app import build_server

    with pytest.raises(ConfigError, match="unknown reranker 'pointwize'"):
        build_server(bad)
