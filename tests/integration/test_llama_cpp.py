"""The real LLM stages against llama.cpp serving SmolLM2-135M over HTTP, on TheoremQA theorems.

A 135M model is weak: the point is that the machinery is real (HTTP, cache, parsing, fallbacks).
Set DIVER_TEST_REPORT=/path.json to keep the measured numbers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from diver.config import DiverSettings, load_settings
from diver.llm.client import ChatLLM, LLMUsage, open_completion_cache

pytestmark = [pytest.mark.llm, pytest.mark.integration, pytest.mark.slow]


def llm_settings(base_url: str) -> dict[str, Any]:
    # llama.cpp ignores max_completion_tokens: without max_tokens in the body it writes to its context size
    common = {"base_url": base_url, "model": "smollm2", "timeout_s": 120, "max_retries": 1,
              "max_tokens_in_extra_body": True}  # fmt: skip
    return {
        "cache": True,
        "concurrency": 2,
        "expander": {**common, "temperature": 0.7, "max_tokens": 64, "context_window": 4096},
        # a small window forces real sliding windows for the listwise stage
        "reranker": {**common, "temperature": 0.0, "max_tokens": 48, "context_window": 1024},
    }


def deep_settings(data_dir: Path, cache_dir: Path, base_url: str) -> DiverSettings:
    return load_settings(
        data_dir=data_dir,
        cache_dir=cache_dir,
        llm=llm_settings(base_url),
        expansion={"rounds": 2, "feedback_k": 5, "n": 2, "passage_tokens": 64, "stop_overlap": 1.0},
        rerank={
            "rerank_k": 8,
            "doc_tokens": 128,
            "domain_kind": "math-theorem",
            "window_size": 5,
            "window_step": 3,
        },
    )


async def test_chat_llm_round_trip_and_cache(llama_server: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, llm=llm_settings(llama_server))
    llm = ChatLLM(settings.llm.reranker, role="reranker", cache=open_completion_cache(settings))
    usage = LLMUsage()
    messages = [("user", "Say hello in one word.")]
    first = await llm.complete(messages, usage)
    second = await llm.complete(messages, usage)
    assert first.strip() and first == second
    assert usage.calls == 1 and usage.cache_hits == 1
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def _recall(hits: list[str], relevant: dict[str, int], k: int = 10) -> float:
    wanted = {d for d, r in relevant.items() if r > 0}
    return len(wanted & set(hits[:k])) / len(wanted) if wanted else 0.0


def test_full_graph_on_theoremqa_theorems(
    llama_server: str, theorem_data_dir: tuple[Path, Any], tmp_path: Path
) -> None:
    from diver.engine import Engine
    from diver.graph.run import run_deep_search
    from diver.stages.assembly_search import with_assembly
    from diver.stages.retriever import as_retriever, search_with_expansions

    data_dir, bench = theorem_data_dir
    settings = deep_settings(data_dir, tmp_path / "cache", llama_server)
    rows: list[dict[str, Any]] = []
    with Engine(settings) as engine:
        col = engine.collection("theorems")
        for qid, query in bench.queries.items():
            events: list[dict[str, Any]] = []
            baseline = [h.id for h in col.search(query, k=10).hits]
            started = time.perf_counter()
            result = run_deep_search(col, query, settings, context={"k": 10}, progress=events.append)
            wall = time.perf_counter() - started
            ids = [h.id for h in result.hits]
            assert len(ids) == 10 and len(set(ids)) == 10
            assert [h.rank for h in result.hits] == list(range(1, 11))
            assert result.rounds >= 1 and result.expansions and result.stop_reason
            assert result.usage["pointwise"].calls + result.usage["pointwise"].failures == 8
            listwise = result.usage["listwise"]
            assert listwise.calls + listwise.failures >= 2  # 8 candidates in windows of 5 (a timeout counts)
            assert result.llm_calls > 0 and result.tokens > 0
            assert any(e["event"] == "llm_progress" for e in events)
            assert all(e.get("message") for e in events)
            # the result, not only that it ran: the final top-10 is the hybrid top-10 of the final query,
            # its top-8 reranked (a permutation with rerank scores), the last 2 in hybrid order
            good = [r for r in result.expansions if r.expansions]
            retriever = with_assembly(as_retriever(col))
            final = search_with_expansions(retriever, query, good[-1].expansions, 10) if good else None
            hybrid = [h.id for h in final] if final is not None else [h.id for h in col.search(query, k=10).hits]
            assert set(ids) == set(hybrid) and ids[8:] == hybrid[8:]
            assert all("pointwise" in h.scores for h in result.hits[:8])
            assert not any("pointwise" in h.scores for h in result.hits[8:])
            assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
            # the trace: one record per round, dense feedback first (DIVER), the last good query kept
            assert len(result.expansions) == result.rounds
            dense = [h.id for h in col.search(query, k=5, mode="dense").hits]
            assert result.expansions[0].feedback_ids == dense
            assert result.final_query == (good[-1].query if good else query)
            assert result.final_query.startswith(query)
            assert result.stop_reason.startswith(("max_rounds", "converged", "expansion round"))
            assert ("expand" in result.fallbacks) == (len(good) < len(result.expansions))
            for stage in ("expand", "pointwise", "listwise"):
                usage = result.usage[stage]  # a stage whose calls all timed out on a loaded CPU counted none
                assert (usage.prompt_tokens > 0 and usage.completion_tokens > 0) == (usage.calls > 0), stage
            assert result.usage["pointwise"].calls > 0  # at least the pointwise stage really ran
            rows.append(
                {
                    "qid": qid,
                    "rounds": result.rounds,
                    "stop_reason": result.stop_reason,
                    "llm_calls": result.llm_calls,
                    "tokens": result.tokens,
                    "calls_by_stage": {s: u.calls for s, u in result.usage.items()},
                    "parse_failures": result.parse_failures,
                    "fallbacks": result.fallbacks,
                    "notes": result.notes,
                    "wall_s": round(wall, 1),
                    "recall@10_hybrid": _recall(baseline, bench.qrels.get(qid, {})),
                    "recall@10_deep": _recall(ids, bench.qrels.get(qid, {})),
                }
            )
        # the same query again is served from the completion cache: no new LLM calls
        again = run_deep_search(col, next(iter(bench.queries.values())), settings, context={"k": 10})
        assert again.llm_calls == 0 and sum(u.cache_hits for u in again.usage.values()) > 0
    report = {"queries": rows, "total_wall_s": round(sum(r["wall_s"] for r in rows), 1)}
    target = os.environ.get("DIVER_TEST_REPORT")
    if target:
        Path(target).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
