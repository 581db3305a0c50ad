"""Retrieval metrics as BRIGHT's reference computes them (``pytrec_eval``), plus a pure-python nDCG@k.

BRIGHT's reference evaluates binary qrels with ``ndcg_cut``, ``recall``, ``map_cut`` and ``recip_rank`` at
cutoffs 1, 5, 10, 25, 50, 100. We report nDCG@k and Recall@k at every cutoff, MAP@100 and MRR.
Queries without any relevant document cannot be scored: they are left out of the mean and listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from diver.errors import require

CUTOFFS: tuple[int, ...] = (1, 5, 10, 25, 50, 100)
MAP_CUTOFF = 100

Qrels = Mapping[str, Mapping[str, int]]
"""query id -> {document id: relevance grade}."""
Run = Mapping[str, Mapping[str, float]]
"""query id -> {document id: score}; higher is better."""


def metric_names(cutoffs: Sequence[int] = CUTOFFS) -> list[str]:
    """The reported metric names, in display order."""
    return [f"nDCG@{k}" for k in cutoffs] + [f"Recall@{k}" for k in cutoffs] + [f"MAP@{MAP_CUTOFF}", "MRR"]


@dataclass
class MetricResult:
    """Per-query values and their mean (fractions in [0, 1], not percentages)."""

    per_query: dict[str, dict[str, float]]
    mean: dict[str, float]
    skipped_no_relevant: list[str] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return len(self.per_query)


def evaluate_run(qrels: Qrels, run: Run, cutoffs: Sequence[int] = CUTOFFS) -> MetricResult:
    """Score ``run`` against ``qrels`` with pytrec_eval.

    A query with relevant documents but no retrieved ones scores 0 (pytrec_eval would silently skip it);
    a query without relevant documents is skipped and listed in ``skipped_no_relevant``.
    """
    pytrec_eval = require("pytrec_eval", "eval", "Computing retrieval metrics")
    judged = {
        q: {d: int(r) for d, r in docs.items()}
        for q, docs in qrels.items()
        if any(r > 0 for r in docs.values())
    }
    skipped = sorted(q for q in qrels if q not in judged)
    names = metric_names(cutoffs)
    if not judged:
        return MetricResult(per_query={}, mean=dict.fromkeys(names, 0.0), skipped_no_relevant=skipped)
    ks = ",".join(str(k) for k in cutoffs)
    measures = {f"ndcg_cut.{ks}", f"recall.{ks}", f"map_cut.{MAP_CUTOFF}", "recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, measures)
    scored_run = {q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged}
    raw = evaluator.evaluate({q: docs for q, docs in scored_run.items() if docs})
    per_query: dict[str, dict[str, float]] = {}
    for qid in judged:
        values = raw.get(qid, {})
        row = {f"nDCG@{k}": values.get(f"ndcg_cut_{k}", 0.0) for k in cutoffs}
        row.update({f"Recall@{k}": values.get(f"recall_{k}", 0.0) for k in cutoffs})
        row[f"MAP@{MAP_CUTOFF}"] = values.get(f"map_cut_{MAP_CUTOFF}", 0.0)
        row["MRR"] = values.get("recip_rank", 0.0)
        per_query[qid] = row
    mean = {name: sum(row[name] for row in per_query.values()) / len(per_query) for name in names}
    return MetricResult(per_query=per_query, mean=mean, skipped_no_relevant=skipped)


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Plain nDCG@k with linear gains and log2 discounts (trec_eval's ``ndcg_cut``), for cross-checks."""
    if k < 1:
        raise ValueError("k must be positive")
    dcg = sum(relevance.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked_ids[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def average_over(results: Mapping[str, MetricResult]) -> dict[str, float]:
    """Macro average of per-domain means (BRIGHT averages domains, not queries)."""
    scored = [r for r in results.values() if r.per_query]
    if not scored:
        return {}
    names = list(scored[0].mean)
    return {name: sum(r.mean[name] for r in scored) / len(scored) for name in names}
