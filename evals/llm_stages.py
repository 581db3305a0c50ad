"""The LLM rows of an evaluation: ``expand`` (DIVER-QExpand then hybrid) and ``rerank`` (expand + rerank).

Each query runs the LangGraph deep-search graph over a retriever that hides the query's excluded ids,
so they are neither ranked nor shown to the expander as feedback (TheoremQA's excluded ids include the
query's own problem, answer included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from diver.config import DiverSettings
from diver.datasets import Benchmark
from diver.errors import MissingDependency, require_extra
from diver.hits import SearchHit
from diver.stages.rerank import registry

from .config import EvalConfig, StageUnavailable
from .stages import progress
from .trec import Checkpoint, Ranking

# Pointwise prompt variant per domain (DIVER's prompts differ for code, maths and documentation).
DOMAIN_KINDS = {
    "theoremqa-theorems-offline": "math-theorem", "theoremqa_theorems": "math-theorem",
    "theoremqa-questions-offline": "math-problem", "theoremqa_questions": "math-problem", "aops": "math-problem",
    "leetcode": "coding", "pony": "documentation",
}  # fmt: skip


def check_llm_stage(stage: str, settings: DiverSettings) -> None:
    """Refuse, with the fix in the message, an LLM stage that cannot run here."""
    try:
        require_extra("llm", f"the {stage!r} stage")
    except MissingDependency as exc:
        raise StageUnavailable(str(exc)) from exc
    if stage in registry.names():  # one reranker alone (after DIVER-QExpand when an expander is configured)
        spec = registry.get(stage)
        if spec.needs_llm and not settings.llm.reranker.model:
            raise StageUnavailable(f"stage {stage!r} needs a reranker LLM: set DIVER_LLM__RERANKER__MODEL")
        reason = spec.unavailable(settings.rerank)
        if reason:
            raise StageUnavailable(f"stage {stage!r} cannot run: {reason}")
        return
    if stage == "rerank" and settings.rerank.cross_encoder.model and not settings.llm.reranker.model:
        return  # a local cross-encoder reranks (after DIVER-QExpand when an expander is configured)
    if not settings.llm.expander.model:
        raise StageUnavailable(
            f"stage {stage!r} needs an expander LLM: set DIVER_LLM__EXPANDER__MODEL (and __BASE_URL for a local "
            "or vLLM endpoint). To reproduce LLM rows without an LLM, pass --queries FILE with precomputed rewrites."
        )
    if stage == "rerank" and not settings.llm.reranker.model:
        raise StageUnavailable(
            "stage 'rerank' needs a reranker LLM: set DIVER_LLM__RERANKER__MODEL (and __BASE_URL), or a local "
            "cross-encoder: DIVER_RERANK__CROSS_ENCODER__MODEL"
        )


class ExcludingRetriever:
    """Hybrid (and dense) search over a collection with a fixed set of ids removed before any cut, in every
    search the graph makes: round 0 (``search``), the rounds with expansions (``search_expanded``: query
    assembly in ``variant``, every underlying search excluding them) and the expander's dense feedback."""

    def __init__(self, collection: Any, exclude: set[str], variant: str = "concat") -> None:
        self.collection = collection
        self.exclude = exclude
        self.name = collection.name
        self.variant = variant
        self._target: Any = None

    def search_expanded(self, query: str, expansions: Sequence[str], k: int) -> list[SearchHit]:
        from diver.stages.assembly_search import AssemblyTarget, search_assembled

        if self._target is None:
            self._target = AssemblyTarget.for_collection(self.collection)
        [result] = search_assembled(self._target, [query], [expansions], k=k, mode="hybrid", variant=self.variant,
                                    exclude=[self.exclude])  # fmt: skip
        return [h for h in result.hits if h.id not in self.exclude]

    def search(self, query: str, k: int) -> list[SearchHit]:
        [result] = self.collection.search_many([query], k=k, mode="hybrid", exclude=[self.exclude])
        return [h for h in result.hits if h.id not in self.exclude]

    def search_dense(self, query: str, k: int) -> list[SearchHit]:
        """Dense-only ranking: DIVER's expander reads dense-retrieval passages (expansion.feedback_retrieval)."""
        [result] = self.collection.search_many([query], k=k, mode="dense", exclude=[self.exclude])
        return [h for h in result.hits if h.id not in self.exclude]

    def get_text(self, doc_id: str) -> str:
        return self.collection.get(doc_id).text


def run_llm_stage(
    col: Any,
    bench: Benchmark,
    stage: str,
    config: EvalConfig,
    settings: DiverSettings,
    checkpoint: Checkpoint,
    notes: list[str],
    chat_factory: Any = None,
) -> tuple[dict[str, Ranking], dict[str, Any]]:
    """Rank every query through the deep-search graph. Returns the rankings and usage statistics."""
    from diver.graph.run import run_deep_search

    check_llm_stage(stage, settings)
    k = min(config.top_k, settings.limits.max_k)
    context: dict[str, Any] = {
        "k": k,
        "expand": bool(settings.llm.expander.model),
        "pointwise": stage == "rerank",
        "listwise": stage == "rerank",
        "domain_kind": DOMAIN_KINDS.get(bench.domain, "general"),
    }
    if stage in registry.names():
        context["rerankers"] = [stage]
    done = checkpoint.load()
    stats: dict[str, Any] = {"queries_run": 0, "llm_calls": 0, "tokens": 0, "parse_failures": Counter(),
                             "fallbacks": 0, "stop_reasons": Counter(), "rerankers": Counter()}  # fmt: skip
    todo = [q for q in bench.queries if q not in done]
    position = {qid: i for i, qid in enumerate(bench.queries)}  # GroupRank's shuffle='reference' run order
    with progress(len(bench.queries), f"{stage} {bench.domain}", config.progress, initial=len(done)) as bar:
        for qid in todo:
            exclude = set(bench.excluded.get(qid, set()))
            query = bench.queries[qid][: settings.limits.max_query_chars]
            retriever = ExcludingRetriever(col, exclude, settings.search.assembly)
            run_context = {**context, "query_index": position[qid], "query_count": len(bench.queries)}
            result = run_deep_search(retriever, query, settings, context=run_context, chat_factory=chat_factory)
            ranking = [(h.id, float(h.score)) for h in result.hits if h.id not in exclude][: config.top_k]
            checkpoint.append({qid: ranking})
            done[qid] = ranking
            stats["queries_run"] += 1
            stats["llm_calls"] += result.llm_calls
            stats["tokens"] += result.tokens
            stats["parse_failures"].update(result.parse_failures)
            stats["fallbacks"] += len(result.fallbacks)
            stats["stop_reasons"][result.stop_reason] += 1
            stats["rerankers"][", ".join(result.rerankers) or "none"] += 1
            for note in (f"{stage}: {n}" for n in result.notes):
                if note not in notes:
                    notes.append(note)
            bar.update(1)
    run = max(1, stats["queries_run"])
    stats["llm_calls_per_query"] = round(stats["llm_calls"] / run, 1)
    stats["tokens_per_query"] = round(stats["tokens"] / run, 1)
    stats["parse_failures"] = dict(stats["parse_failures"])
    stats["stop_reasons"] = dict(stats["stop_reasons"])
    stats["rerankers"] = dict(stats["rerankers"])
    return {q: done[q] for q in bench.queries}, stats
