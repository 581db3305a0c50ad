"""The groupwise (GroupRank) and cross-encoder rerank nodes, and the merge over every reranker that ran.

The cross-encoder runs before the LLM rerankers when both are chosen (a first pass: they rerank its top
``rerank.cross_encoder.llm_k``); groupwise runs beside pointwise and listwise and merges with them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime

from diver.errors import DiverError
from diver.graph.context import Context
from diver.graph.nodes import _ms, emit, hits_of
from diver.graph.rerank_nodes import RerankNodes, _scored, monotone_scores
from diver.graph.state import DeepSearchState
from diver.hits import SearchHit
from diver.llm.client import LLMUsage
from diver.stages.rerank.choice import NAMES, first_pass_ids, merge_all
from diver.stages.rerank.cross_encoder import CrossEncoderResult, rerank_cross_encoder
from diver.stages.rerank.groupwise import GroupwiseResult, rerank_groupwise
from diver.stages.rerank.llm_rerankers import ListwiseResult, PointwiseResult, document_texts


def llm_candidates(state: DeepSearchState, rerank_k: int, llm_k: int) -> list[SearchHit]:
    """What an LLM reranker sees: the hybrid top ``rerank_k``, or the cross-encoder's top ``llm_k``."""
    hits = hits_of(state)[:rerank_k]
    first = (state.get("cross_encoder") or {}).get("order")
    by_id = {h.id: h for h in hits}
    return [by_id[d] for d in first_pass_ids([h.id for h in hits], first, llm_k) if d in by_id]


def route_after_cross_encoder(state: DeepSearchState) -> str | list[str]:
    """The LLM rerankers of the plan (they rerank the cross-encoder's top), or straight to merge."""
    rest = [n for n in state.get("plan") or [] if n != "rerank_cross_encoder"]
    return rest or "merge"


class AllRerankNodes(RerankNodes):
    """Adds groupwise and cross-encoder reranking; the merge covers every reranker that ran."""

    def _candidates(self, state: DeepSearchState, settings: Any) -> list[SearchHit]:
        return llm_candidates(state, settings.rerank_k, settings.cross_encoder.llm_k)

    async def rerank_groupwise(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """GroupRank: groups of candidates scored 0..10 per call over shuffled rounds (DIVER v3)."""
        _, res = await self._resources(runtime)
        settings = res.settings.rerank
        assert res.reranker is not None  # decide() plans LLM stages only with a reranker
        candidates = self._candidates(state, settings)
        started = time.perf_counter()
        emit({"event": "stage_started", "stage": "groupwise", "candidates": len(candidates)})
        texts = await asyncio.to_thread(
            document_texts, candidates, res.retriever.get_text, settings.groupwise.max_doc_chars
        )
        usage = LLMUsage()

        def progress(done: int, total: int) -> None:
            emit({"event": "llm_progress", "stage": "groupwise", "done": done, "total": total})

        notes: list[str] = []
        try:
            await asyncio.to_thread(res.reranker.prepare)
            result = await rerank_groupwise(res.reranker, state["query"], candidates, texts, settings.groupwise,
                                            usage, progress, settings.pointwise_mode)  # fmt: skip
            payload = result.model_dump()
            failed = result.parse_failures + result.call_failures
            if failed:
                notes.append(f"groupwise: {failed} of {result.groups} groups unusable (their documents scored 0)")
        except DiverError as exc:
            payload = {}
            notes.append(f"rerank groupwise failed: {exc}")
        elapsed = _ms(started)
        emit({"event": "stage_done", "stage": "groupwise", "ms": elapsed, "llm_calls": usage.calls})
        return {"groupwise": payload, "usage": {"groupwise": usage.model_dump()},
                "timings_ms": {"groupwise": elapsed}, "notes": notes}  # fmt: skip

    async def rerank_cross_encoder(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """A local cross-encoder scores every candidate; blended with the hybrid score like pointwise."""
        _, res = await self._resources(runtime)
        settings = res.settings.rerank
        candidates = hits_of(state)[: settings.rerank_k]
        started = time.perf_counter()
        emit({"event": "stage_started", "stage": "cross-encoder", "candidates": len(candidates)})
        notes: list[str] = []
        try:
            texts = await asyncio.to_thread(
                document_texts, candidates, res.retriever.get_text, settings.cross_encoder.doc_chars
            )
            result = await asyncio.to_thread(rerank_cross_encoder, state["query"], candidates, texts,
                                             settings.cross_encoder, settings.pointwise_mode)  # fmt: skip
            payload = result.model_dump()
        except DiverError as exc:
            payload = {}
            notes.append(f"rerank cross-encoder failed: {exc}")
        elapsed = _ms(started)
        emit({"event": "stage_done", "stage": "cross-encoder", "ms": elapsed, "llm_calls": 0})
        return {"cross_encoder": payload, "timings_ms": {"cross-encoder": elapsed}, "notes": notes}

    async def merge(self, state: DeepSearchState, runtime: Runtime[Context]) -> dict[str, Any]:
        """LLM rerankers merged by ``sum w * -ln(rank + 1)``; the cross-encoder's order first-passes them or
        stands alone; unreranked hits follow in hybrid order."""
        ctx, res = await self._resources(runtime)
        rerank = res.settings.rerank
        hits = hits_of(state)
        reranked = [h.id for h in hits[: rerank.rerank_k]] if state.get("plan") else []
        orders = {n: state[n]["order"] for n in ("pointwise", "listwise", "groupwise") if state.get(n)}
        weights = {"pointwise": rerank.pointwise_weight, "listwise": rerank.listwise_weight,
                   "groupwise": rerank.groupwise_weight}  # fmt: skip
        ce = CrossEncoderResult.model_validate(state["cross_encoder"]) if state.get("cross_encoder") else None
        order, final = merge_all(reranked, orders, weights, (ce.order, ce.combined) if ce else None,
                                 rerank.cross_encoder.llm_k)  # fmt: skip
        by_id = {h.id: h for h in hits}
        chosen = set(order)
        ranked = [by_id[d] for d in order] + [h for h in hits if h.id not in chosen]
        final = monotone_scores([h.id for h in ranked], final)
        group = GroupwiseResult.model_validate(state["groupwise"]) if state.get("groupwise") else None
        pw = PointwiseResult.model_validate(state["pointwise"]) if state.get("pointwise") else None
        lw = ListwiseResult.model_validate(state["listwise"]) if state.get("listwise") else None
        results = []
        for rank, hit in enumerate(ranked[: ctx.k], 1):
            scored = _scored(hit, rank, final, pw, lw)
            extra = dict(scored.scores)
            if group is not None and hit.id in group.combined:
                extra["groupwise"] = group.combined[hit.id]
                extra["groupwise_group"] = group.group_scores.get(hit.id, 0.0)
            if ce is not None and hit.id in ce.combined:
                extra["cross_encoder"] = ce.combined[hit.id]
                extra["cross_encoder_model"] = ce.model_scores[hit.id]
            results.append(scored.model_copy(update={"scores": extra}).model_dump())
        return {"results": results}


def rerankers_ran(state: dict[str, Any]) -> list[str]:
    """Names of the rerankers that produced a result, in plan order."""
    keys = {"rerank_pointwise": "pointwise", "rerank_listwise": "listwise", "rerank_groupwise": "groupwise",
            "rerank_cross_encoder": "cross_encoder"}  # fmt: skip
    return [NAMES[n] for n in state.get("plan") or [] if state.get(keys.get(n, ""))]
