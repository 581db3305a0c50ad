"""Rank fusion, pure functions over ``{doc_id: score}`` mappings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def min_max_normalise(scores: Mapping[str, float]) -> dict[str, float]:
    """Scale scores to [0, 1]. A list whose scores are all equal maps to 1.0 (every member is the best)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return {doc_id: 1.0 for doc_id in scores}
    span = high - low
    return {doc_id: (score - low) / span for doc_id, score in scores.items()}


def _reference_normalised(scores: Mapping[str, float], ids: Iterable[str]) -> dict[str, float]:
    """``Retriever/merge_scores.py`` (2ecd1fc) lines 36-37: ``(scores.get(did, 0) - min) / (max - min)``,
    0 when ``max == min``: a missing document is normalised from a raw score of 0 (below 0 when the list's
    minimum is positive), a constant list gives 0."""
    if not scores:
        return {doc_id: 0.0 for doc_id in ids}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {doc_id: (scores.get(doc_id, 0.0) - low) / span if span != 0 else 0.0 for doc_id in ids}


def fuse_min_max(
    dense: Mapping[str, float], lexical: Mapping[str, float], w_dense: float = 0.5, missing: str = "zero"
) -> dict[str, float]:
    """DIVER's hybrid rule: union of both top lists, each min-max normalised, ``w*dense + (1-w)*bm25``.

    ``missing="zero"``: a document missing from one list gets 0 from that list (it is at or below that list's
    minimum), a constant list 1.0. ``missing="reference"``: the reference's arithmetic
    (``_reference_normalised``).
    """
    if not 0.0 <= w_dense <= 1.0:
        raise ValueError("w_dense must be within [0, 1]")
    if missing == "reference":
        ids = dense.keys() | lexical.keys()
        dn, ln = _reference_normalised(dense, ids), _reference_normalised(lexical, ids)
        return {doc_id: dn[doc_id] * w_dense + ln[doc_id] * (1.0 - w_dense) for doc_id in ids}
    d, s = min_max_normalise(dense), min_max_normalise(lexical)
    return {
        doc_id: w_dense * d.get(doc_id, 0.0) + (1.0 - w_dense) * s.get(doc_id, 0.0)
        for doc_id in d.keys() | s.keys()
    }


def ranks_of(scores: Mapping[str, float]) -> dict[str, int]:
    """1-based ranks, best score first; ties broken by doc id for determinism."""
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return {doc_id: rank for rank, (doc_id, _) in enumerate(ordered, start=1)}


def fuse_rrf(*runs: Mapping[str, float], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion: ``sum over runs of 1 / (k + rank)``."""
    fused: dict[str, float] = {}
    for run in runs:
        for doc_id, rank in ranks_of(run).items():
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
    return fused


def sort_scores(scores: Mapping[str, float], k: int | None = None) -> list[tuple[str, float]]:
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return ordered if k is None else ordered[:k]


def combine_retrievers(
    mode: str,
    lexical: dict[str, tuple[float, int]] | None,
    dense: dict[str, tuple[float, int]] | None,
    fusion: Any,
    k: int,
) -> tuple[list[tuple[str, float]], dict[str, dict[str, tuple[float, int]]]]:
    """The top-``k`` (doc id, score) of one search mode, and each retriever's doc -> (score, best chunk)."""
    per_retriever: dict[str, dict[str, tuple[float, int]]] = {}
    if lexical is not None:
        per_retriever["bm25"] = lexical
    if dense is not None:
        per_retriever["dense"] = dense
    if mode == "bm25":
        return sort_scores({d: s for d, (s, _) in lexical.items()}, k), per_retriever  # type: ignore[union-attr]
    if mode == "dense":
        return sort_scores({d: s for d, (s, _) in dense.items()}, k), per_retriever  # type: ignore[union-attr]
    lex_scores = {d: s for d, (s, _) in lexical.items()}  # type: ignore[union-attr]
    dense_scores = {d: s for d, (s, _) in dense.items()}  # type: ignore[union-attr]
    if fusion.method == "rrf":
        fused = fuse_rrf(dense_scores, lex_scores, k=fusion.rrf_k)
    else:
        fused = fuse_min_max(dense_scores, lex_scores, fusion.w_dense, fusion.missing)
    return sort_scores(fused, k), per_retriever
