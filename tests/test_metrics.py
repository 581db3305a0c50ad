"""Metrics: pytrec_eval wrapper against hand-computed values, and the pure-python nDCG cross-check."""

from __future__ import annotations

import math
import random

import pytest

from diver.datasets.metrics import CUTOFFS, average_over, evaluate_run, metric_names, ndcg_at_k

RELEVANT = {"d1": 1, "d3": 1, "d7": 1}
RANKING = ["d2", "d1", "d4", "d3", "d5", "d6", "d8", "d9", "d10", "d11", "d7"]  # d7 at rank 11


def as_run(ranking: list[str]) -> dict[str, float]:
    return {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}  # distinct, decreasing scores


def test_hand_computed_ndcg_at_10() -> None:
    # Relevant at ranks 2 and 4 within the top 10: DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606.
    # Ideal: three relevant at ranks 1-3: IDCG = 1 + 1/log2(3) + 1/log2(4) = 1 + 0.630930 + 0.5 = 2.130930.
    expected = 1.061606 / 2.130930  # = 0.498190
    assert ndcg_at_k(RANKING, RELEVANT, 10) == pytest.approx(expected, abs=1e-6)
    assert ndcg_at_k(RANKING, RELEVANT, 10) == pytest.approx(0.498190, abs=1e-5)
    result = evaluate_run({"q": RELEVANT}, {"q": as_run(RANKING)})
    row = result.per_query["q"]
    assert row["nDCG@10"] == pytest.approx(0.498190, abs=1e-5)
    assert row["nDCG@1"] == 0.0
    assert row["Recall@10"] == pytest.approx(2 / 3)
    assert row["Recall@25"] == pytest.approx(1.0)
    assert row["MRR"] == pytest.approx(0.5)
    assert row["MAP@100"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 11) / 3)
    assert result.mean == row


def test_metric_names_and_cutoffs() -> None:
    names = metric_names()
    assert names[:6] == [f"nDCG@{k}" for k in (1, 5, 10, 25, 50, 100)]
    assert "MAP@100" in names and "MRR" in names and "Recall@100" in names
    assert CUTOFFS == (1, 5, 10, 25, 50, 100)


def test_unjudged_query_is_skipped_and_missing_run_scores_zero() -> None:
    qrels = {"a": {"x": 1}, "b": {}, "c": {"y": 1}}
    result = evaluate_run(qrels, {"a": {"x": 2.0, "z": 1.0}})
    assert result.skipped_no_relevant == ["b"]
    assert result.evaluated == 2
    assert result.per_query["a"]["nDCG@10"] == pytest.approx(1.0)
    assert result.per_query["c"]["nDCG@10"] == 0.0  # relevant docs but nothing retrieved
    assert result.mean["nDCG@10"] == pytest.approx(0.5)


def test_pure_python_agrees_with_pytrec_eval_on_random_runs() -> None:
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(20):
        qrels[f"q{q}"] = {d: 1 for d in rng.sample(docs, rng.randint(1, 6))}
        ranking = rng.sample(docs, 40)
        run[f"q{q}"] = as_run(ranking)
    result = evaluate_run(qrels, run)
    for qid, rel in qrels.items():
        ranking = sorted(run[qid], key=lambda d: -run[qid][d])
        for k in (1, 5, 10, 25):
            assert result.per_query[qid][f"nDCG@{k}"] == pytest.approx(ndcg_at_k(ranking, rel, k), abs=1e-9)


def test_average_over_domains_is_macro() -> None:
    one = evaluate_run({"q": {"x": 1}}, {"q": {"x": 1.0}})
    two = evaluate_run({"q": {"x": 1}, "r": {"y": 1}}, {"q": {"z": 1.0}, "r": {"z": 1.0}})
    assert average_over({"a": one, "b": two})["nDCG@10"] == pytest.approx(0.5)
    assert not math.isnan(average_over({"a": one})["MRR"])
