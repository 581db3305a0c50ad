"""Rerank nodes (pointwise and listwise run as parallel branches) and the final merge."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime

from diver.errors import DiverError
from diver.graph.context import Context
from diver.graph.nodes import Nodes, _ms, emit, hits_of
from diver.graph.state import DeepSearchState
from diver.hits import SearchHit
from diver.llm.client import LLMUsage
from diver.stages.rerank.llm_rerankers import (
    ListwiseResult,
    PointwiseResult,
    document_texts,
    merge_reranked,
    rerank_listwise,
    rerank_pointwise,
)


class RerankNodes(Nodes):
    """Adds the reranking stages and the merge to the retrieval/expansion nodes."""

    def _candidates(self, state: DeepSearchState, settings: Any) -> list[SearchHit]:
        """The candidates an LLM reranker sees (the subclass puts a cross-encoder first pass here)."""
        return hits_of(state)[: settings.rerank_k]

    async def _rerank(self, stage: str, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        _, res = await self._resources(runtime)
        settings = res.settings.rerank
        assert res.reranker is not None  # decide() plans rerank stages only with a reranker
        candidates = self._candidates(state, settings)
        started = time.perf_counter()
        emit({"event": "stage_started", "stage": stage, "candidates": len(candidates)})
        texts = await asyncio.to_thread(
            document_texts, candidates, res.retriever.get_text, settings.doc_tokens
        )
        usage = LLMUsage()

        def progress(done: int, total: int) -> None:
            emit({"event": "llm_progress", "stage": stage, "done": done, "total": total})

        run = rerank_pointwise if stage == "pointwise" else rerank_listwise
        notes: list[str] = []
        try:
            await asyncio.to_thread(res.reranker.prepare)
            result = await run(res.reranker, state["query"], candidates, texts, settings, usage, progress)
            payload = result.model_dump()
        except DiverError as exc:  # client could not be built: the stage is skipped, and says so
            payload = {}
            notes.append(f"rerank {stage} failed: {exc}")
        notes.extend(_stage_notes(stage, payload))
        elapsed = _ms(started)
        emit({"event": "stage_done", "stage": stage, "ms": elapsed, "llm_calls": usage.calls})
        return {
            stage: payload,
            "usage": {stage: usage.model_dump()},
            "timings_ms": {stage: elapsed},
            "notes": notes,
        }

    async def rerank_pointwise(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """One 'Relevance score: X' call per candidate, blended with the hybrid score."""
        return await self._rerank("pointwise", state, runtime)

    async def rerank_listwise(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Numbered candidates ranked in one call or in sliding windows."""
        return await self._rerank("listwise", state, runtime)

    async def merge(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """final = w_p * -ln(r_p + 1) + w_l * -ln(r_l + 1), ranks r from 0; unreranked hits follow in hybrid
        order."""
        ctx, res = await self._resources(runtime)
        hits = hits_of(state)
        reranked = hits[: res.settings.rerank.rerank_k] if state.get("plan") else []
        pointwise = PointwiseResult.model_validate(state["pointwise"]) if state.get("pointwise") else None
        listwise = ListwiseResult.model_validate(state["listwise"]) if state.get("listwise") else None
        order, final = merge_reranked([h.id for h in reranked], pointwise, listwise, res.settings.rerank)
        by_id = {h.id: h for h in hits}
        reranked_ids = set(order)
        ranked = [by_id[d] for d in order] + [h for h in hits if h.id not in reranked_ids]
        final = monotone_scores([h.id for h in ranked], final)
        results = [
            _scored(hit, rank, final, pointwise, listwise) for rank, hit in enumerate(ranked[: ctx.k], 1)
        ]
        return {"results": [r.model_dump() for r in results]}


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


def _scored(
    hit: SearchHit, rank: int, final: dict[str, float], pw: PointwiseResult | None, lw: ListwiseResult | None
) -> SearchHit:
    scores = dict(hit.scores)
    scores["hybrid"] = hit.score
    if pw is not None and hit.id in pw.combined:
        scores["pointwise"] = pw.combined[hit.id]
        if pw.llm_scores.get(hit.id) is not None:
            scores["pointwise_llm"] = pw.llm_scores[hit.id]  # type: ignore[assignment]
    if lw is not None and hit.id in lw.order:
        scores["listwise_rank"] = float(lw.order.index(hit.id) + 1)
    score = final.get(hit.id, hit.score)
    return hit.model_copy(update={"rank": rank, "score": score, "scores": scores})


def _stage_notes(stage: str, payload: dict[str, Any]) -> list[str]:
    if not payload:
        return []
    notes = []
    if stage == "pointwise":
        filled = (
            "scored 0, as DIVER" if payload.get("mode", "reference") == "reference" else "mean LLM score used"
        )
        if payload["parse_failures"]:
            notes.append(f"pointwise: {len(payload['parse_failures'])} replies without a score ({filled})")
        if payload["call_failures"]:
            notes.append(f"pointwise: {len(payload['call_failures'])} failed calls ({filled})")
    elif payload["fallback"]:
        notes.append("listwise: no usable ranking, prior order kept")
    elif payload["parse_failures"] or payload["call_failures"]:
        notes.append(
            f"listwise: {payload['parse_failures'] + payload['call_failures']} window(s) kept prior order"
        )
    return notes
