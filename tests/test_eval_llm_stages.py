"""`diver eval --stages ...,expand,rerank`: the deep-search graph per query, excluded ids never shown or ranked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from llm_fakes import ScriptedChatModel

from diver.config import load_settings
from diver.evals.runner import EvalConfig, run_eval
from diver.evals.trec import read_run

pytest.importorskip("langgraph")


def reply(prompt: str) -> str:
    if "Relevance score" in prompt:
        return "Relevance score: 7"
    if '"ranking"' in prompt:
        count = len(re.findall(r"^\[\d+\]", prompt, flags=re.M))
        return "```json\n" + json.dumps({"ranking": list(range(count, 0, -1))}) + "\n```"
    return "<think>scratch</think>The answer uses the binomial theorem and counting arguments."


def test_expand_and_rerank_rows_with_excluded_ids(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        embedding={"provider": "hashing"},
        llm={"expander": {"model": "fake", "temperature": 0.7}, "reranker": {"model": "fake"}},
        rerank={"rerank_k": 8},
    )
    model = ScriptedChatModel(reply=reply, prompts=[])
    config = EvalConfig(
        benchmark="theoremqa-questions-offline", stages=["hybrid", "expand", "rerank"], limit_queries=3,
        top_k=50, out_dir=tmp_path / "run", progress=False,
    )
    result = run_eval(config, settings, chat_factory=lambda _settings: model)
    domain = "theoremqa-questions-offline"
    from diver.datasets.theoremqa import build_questions

    bench = build_questions().limited(3)
    excluded = {q: bench.excluded[q] for q in bench.queries}
    assert any(excluded.values()), "the fixture needs queries with excluded ids"
    for stage in ("hybrid", "expand", "rerank"):
        run = read_run(tmp_path / "run" / f"run.{stage}.{domain}.trec")
        assert set(run) == set(bench.queries)
        for qid, ranking in run.items():
            assert not {d for d, _ in ranking} & excluded[qid], (stage, qid)
    # excluded documents were never shown to the LLM either (their texts hold the answers)
    all_prompts = " ".join(" ".join(model.prompts).split())
    texts = {d.id: " ".join(d.text.split()) for d in bench.corpus}
    shown = [d for d, t in texts.items() if t[:200] in all_prompts]
    assert shown, "the check must see the documents that were shown"
    for ids in excluded.values():
        assert not set(ids) & set(shown)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    rerank_info = state["finished"][f"rerank/{domain}"]
    assert rerank_info["llm_calls"] > 0 and rerank_info["llm_calls_per_query"] > 8  # expansions + 8 pointwise + listwise
    assert "rerank" in result.table and "expand" in result.table
