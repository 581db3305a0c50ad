"""Which rerankers run for a query, and why; the order the LLM rerankers see; the final merge.

Default (``rerank.rerankers`` None): DIVER v2's pointwise + listwise (those switched on) when an LLM
reranker is configured, the cross-encoder when only a local reranker model is, none otherwise. Asked-for
rerankers that cannot run are skipped, each with its reason. With LLM rerankers, the cross-encoder is a
first pass: they rerank its top ``cross_encoder.llm_k``; its order follows for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from diver.stages.rerank import registry
from diver.stages.rerank.base import node_name
from diver.stages.rerank.parsers import merge_rankings


@dataclass
class RerankChoice:
    names: list[str] = field(default_factory=list)
    why: str = ""
    skipped: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> list[str]:
        return [node_name(n) for n in self.names]


def _ordered(names: Sequence[str]) -> list[str]:
    """Unique names, first passes first (the cross-encoder: the LLM rerankers rerank its top), then as asked."""
    unique = list(dict.fromkeys(names))
    first = [n for n in unique if registry.get(n).first_pass]
    return first + [n for n in unique if n not in first]


def choose_rerankers(rerank: Any, has_llm: bool) -> RerankChoice:
    """``rerank`` is a ``RerankSettings``; ``has_llm`` whether a reranker LLM is configured. An unknown
    name in ``rerank.rerankers`` is a ``ConfigError`` naming the registered ones."""
    has_ce = bool(rerank.cross_encoder.model)
    if rerank.rerankers is not None:
        if not rerank.rerankers:
            return RerankChoice(why="rerankers=[]: no reranking asked for", skipped=["rerank: disabled"])
        names, skipped = [], []
        for name in _ordered(registry.check(rerank.rerankers) or []):
            spec = registry.get(name)
            reason = "no reranker LLM configured (set llm.reranker.model)" if spec.needs_llm and not has_llm else ""
            reason = reason or spec.unavailable(rerank)
            if reason:
                skipped.append(f"rerank {name} skipped: {reason}")
            else:
                names.append(name)
        why = f"asked for: {', '.join(rerank.rerankers)}"
        return RerankChoice(names, why + ("" if names else " (none can run here)"), skipped)
    flags = [n for n, on in (("pointwise", rerank.pointwise), ("listwise", rerank.listwise)) if on]
    if not flags:
        return RerankChoice(why="pointwise and listwise switched off", skipped=["rerank: disabled"])
    if rerank.provider == "cross_encoder" or (rerank.provider == "auto" and has_ce and not has_llm):
        if has_ce:
            why = "rerank.provider='cross_encoder'" if rerank.provider != "auto" else "only a local cross-encoder"
            return RerankChoice(["cross_encoder"], f"default: {why} is configured")
        return RerankChoice(why="rerank.provider='cross_encoder' but no model",
                            skipped=["rerank skipped: no cross-encoder model (set rerank.cross_encoder.model)"])  # fmt: skip
    if has_llm:
        return RerankChoice(flags, "default: DIVER v2 pointwise + listwise, a reranker LLM is configured")
    return RerankChoice(
        why="no reranker configured",
        skipped=["rerank skipped: no reranker LLM configured (set llm.reranker.model)"],
    )


def first_pass_ids(prior: Sequence[str], cross_encoder_order: Sequence[str] | None, llm_k: int) -> list[str]:
    """The candidates the LLM rerankers see: the cross-encoder's top ``llm_k`` when it ran, else ``prior``."""
    if not cross_encoder_order:
        return list(prior)
    return list(cross_encoder_order[:llm_k])


def merge_all(
    prior: Sequence[str],
    orders: Mapping[str, Sequence[str]],
    weights: Mapping[str, float],
    cross_encoder: tuple[Sequence[str], Mapping[str, float]] | None = None,
    llm_k: int | None = None,
) -> tuple[list[str], dict[str, float]]:
    """The final order of the reranked candidates and the scores that produced it.

    Rank-merged rerankers merge as DIVER's ``rerank_merge_point_and_list``: ``sum w * -ln(rank + 1)``, ranks
    from 0, in registry order (pointwise, listwise, groupwise, then any registered later). With a first pass
    (``cross_encoder``: its order and blended scores), the merged order covers its top ``llm_k``; the rest
    follow in its order (scored by ``monotone_scores`` downstream). Alone, the first pass's order and scores
    are final."""
    stages = [(orders[n], weights[n]) for n in registry.names() if n in orders]
    if cross_encoder is not None:
        ce_order, ce_scores = cross_encoder
        if not stages:
            return list(ce_order), dict(ce_scores)
        head = first_pass_ids(prior, ce_order, llm_k or len(ce_order))
        merged, final = merge_rankings(head, stages)
        chosen = set(merged)
        return merged + [d for d in ce_order if d not in chosen], final
    if not stages:
        return list(prior), {}
    return merge_rankings(prior, stages)
