"""Rerank nodes: one generic node per registered reranker (``diver.stages.rerank.registry``), and the
final merge over every reranker that ran. Results live in the state's ``rerank`` dict, keyed by name."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.runtime import Runtime

from diver.config import RerankSettings
from diver.errors import DiverError
from diver.graph.context import Context
from diver.graph.nodes import Nodes, _ms, emit, hits_of
from diver.graph.rerank_more import candidates_for, first_pass_result
from diver.graph.state import DeepSearchState
from diver.hits import SearchHit
from diver.llm.client import LLMUsage
from diver.stages.rerank import registry
from diver.stages.rerank.base import RerankerSpec, RerankRequest, RerankResult
from diver.stages.rerank.choice import merge_all
from diver.stages.rerank.groupwise_core import QueryPosition
from diver.stages.rerank.texts import document_texts

NodeFn = Callable[[DeepSearchState, Runtime[Context]], Awaitable[dict[str, Any]]]


class RerankNodes(Nodes):
    """Adds a node per reranker and the merge to the retrieval/expansion nodes."""

    def node_for(self, spec: RerankerSpec) -> NodeFn:
        async def node(state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
            return await self._rerank(spec, state, runtime)

        node.__doc__ = spec.description
        return node

    async def _rerank(self, spec: RerankerSpec, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """The one stage body: events, texts, the run, usage, timings, a typed-error note."""
        ctx, res = await self._resources(runtime)
        settings = res.settings.rerank
        name = spec.name
        candidates = candidates_for(spec, state, settings)
        started = time.perf_counter()
        emit({"event": "stage_started", "stage": name, "candidates": len(candidates)})
        usage = LLMUsage()

        def progress(done: int, total: int) -> None:
            emit({"event": "llm_progress", "stage": name, "done": done, "total": total})

        notes: list[str] = []
        try:
            texts = await asyncio.to_thread(document_texts, candidates, res.retriever.get_text, spec.text_limit(settings))
            llm = res.llm_for(name)  # llm.<name> when that role has its own model, else the reranker
            if spec.needs_llm:
                assert llm is not None  # decide() plans LLM rerankers only with a reranker LLM
                await asyncio.to_thread(llm.prepare)
            request = RerankRequest(state["query"], candidates, texts, settings, usage, llm, progress,
                                    query_position(ctx, settings))  # fmt: skip
            if inspect.iscoroutinefunction(spec.run):
                result = await spec.run(request)
            else:
                result = await asyncio.to_thread(spec.run, request)
            payload = result.model_dump()
            notes.extend(spec.notes(result))
        except DiverError as exc:  # client or model could not be built: the stage is skipped, and says so
            payload = {}
            notes.append(f"rerank {name} failed: {exc}")
        elapsed = _ms(started)
        emit({"event": "stage_done", "stage": name, "ms": elapsed, "llm_calls": usage.calls})
        out: dict[str, Any] = {"rerank": {name: payload}, "timings_ms": {name: elapsed}, "notes": notes}
        if spec.needs_llm:
            out["usage"] = {name: usage.model_dump()}
        return out

    async def merge(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Rank-merged rerankers by ``sum w * -ln(rank + 1)``; a first pass (the cross-encoder) orders the
        rest or stands alone; unreranked hits follow in hybrid order."""
        ctx, res = await self._resources(runtime)
        rerank = res.settings.rerank
        hits = hits_of(state)
        reranked = [h.id for h in hits[: rerank.rerank_k]] if state.get("plan") else []
        results = ran_results(state)
        orders = {n: r.order for n, r in results.items() if not registry.get(n).first_pass}
        first = first_pass_result(results)
        order, final = merge_all(reranked, orders, registry.merge_weights(rerank),
                                 (first.order, first.blended()) if first else None,
                                 rerank.cross_encoder.llm_k)  # fmt: skip
        by_id = {h.id: h for h in hits}
        chosen = set(order)
        ranked = [by_id[d] for d in order] + [h for h in hits if h.id not in chosen]
        final = monotone_scores([h.id for h in ranked], final)
        scored = [_scored(hit, rank, final, results) for rank, hit in enumerate(ranked[: ctx.k], 1)]
        return {"results": [h.model_dump() for h in scored]}


def query_position(ctx: Context, settings: RerankSettings) -> QueryPosition | None:
    """This query's place in a run (diver eval sets query_index/query_count); every other query is assumed
    to group min(input_k, rerank_k) candidates, as the reference's score files hold at least input_k."""
    if ctx.query_index is None or not ctx.query_count:
        return None
    size = min(settings.groupwise.input_k, settings.rerank_k)
    return QueryPosition(ctx.query_index, (size,) * ctx.query_count)


def ran_results(state: dict[str, Any]) -> dict[str, RerankResult]:
    """The typed result of every registered reranker that produced one, in registry order."""
    raw = state.get("rerank") or {}
    return {s.name: s.result.model_validate(raw[s.name]) for s in registry.specs() if raw.get(s.name)}


def monotone_scores(ranked_ids: list[str], final: dict[str, float]) -> dict[str, float]:
    """Scores that never increase down the list: reranked documents keep their merged score (negative
    log-ranks); the unreranked tail gets ``min(merged) - i`` (its hybrid score stays in ``scores``).
    Anything that sorts by score (TREC tools, clients) then sees the graph's order."""
    if not final:
        return final
    out = dict(final)
    floor = min(final.values())
    tail = [doc for doc in ranked_ids if doc not in final]
    for i, doc in enumerate(tail, start=1):
        out[doc] = floor - i
    return out


def _scored(hit: SearchHit, rank: int, final: dict[str, float], results: dict[str, RerankResult]) -> SearchHit:
    scores = dict(hit.scores)
    scores["hybrid"] = hit.score
    for result in results.values():
        scores.update(result.hit_scores(hit.id))
    score = final.get(hit.id, hit.score)
    return hit.model_copy(update={"rank": rank, "score": score, "scores": scores})
