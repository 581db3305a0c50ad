"""Pure helpers of the rerank nodes: which candidates a reranker sees, the route after a first pass, and
which rerankers ran. A first pass (``default_weight`` None: the cross-encoder) runs before the others when
both are chosen; they rerank its top ``rerank.cross_encoder.llm_k``."""

from __future__ import annotations

from typing import Any

from diver.graph.nodes import hits_of
from diver.graph.state import DeepSearchState
from diver.hits import SearchHit
from diver.stages.rerank import registry
from diver.stages.rerank.base import RerankerSpec, RerankResult
from diver.stages.rerank.choice import first_pass_ids


def first_pass_result(results: dict[str, RerankResult]) -> RerankResult | None:
    """The result of the first pass that ran (the first in registry order), if any."""
    return next((r for n, r in results.items() if registry.get(n).first_pass), None)


def _first_pass_order(state: DeepSearchState) -> list[str] | None:
    raw = state.get("rerank") or {}
    for spec in registry.specs():
        if spec.first_pass and (raw.get(spec.name) or {}).get("order"):
            return list(raw[spec.name]["order"])
    return None


def llm_candidates(state: DeepSearchState, rerank_k: int, llm_k: int) -> list[SearchHit]:
    """What a rank-merged reranker sees: the hybrid top ``rerank_k``, or the first pass's top ``llm_k``."""
    hits = hits_of(state)[:rerank_k]
    by_id = {h.id: h for h in hits}
    return [by_id[d] for d in first_pass_ids([h.id for h in hits], _first_pass_order(state), llm_k) if d in by_id]


def candidates_for(spec: RerankerSpec, state: DeepSearchState, settings: Any) -> list[SearchHit]:
    if spec.first_pass:
        return hits_of(state)[: settings.rerank_k]
    return llm_candidates(state, settings.rerank_k, settings.cross_encoder.llm_k)


def first_pass_nodes(plan: list[str]) -> list[str]:
    return [n for n in plan if (spec := registry.spec_of_node(n)) is not None and spec.first_pass]


def route_after_first_pass(state: DeepSearchState) -> str | list[str]:
    """The other rerankers of the plan (they rerank the first pass's top), or straight to merge."""
    plan = list(state.get("plan") or [])
    first = set(first_pass_nodes(plan))
    rest = [n for n in plan if n not in first]
    return rest or "merge"


route_after_cross_encoder = route_after_first_pass


def rerankers_ran(state: dict[str, Any]) -> list[str]:
    """Names of the rerankers that produced a result, in plan order."""
    raw = state.get("rerank") or {}
    out = []
    for node in state.get("plan") or []:
        spec = registry.spec_of_node(node)
        if spec is not None and raw.get(spec.name):
            out.append(spec.name)
    return out
