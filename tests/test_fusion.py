import math

import pytest

from diver.fusion import fuse_min_max, fuse_rrf, min_max_normalise, ranks_of, sort_scores


def test_min_max_hand_computed():
    assert min_max_normalise({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert min_max_normalise({"a": 7.0, "b": 7.0}) == {"a": 1.0, "b": 1.0}
    assert min_max_normalise({}) == {}


def test_fuse_min_max_hand_computed():
    dense = {"a": 0.9, "b": 0.5, "c": 0.7}  # normalised: a 1, b 0, c 0.5
    bm25 = {"b": 10.0, "d": 2.0, "c": 6.0}  # normalised: b 1, d 0, c 0.5
    fused = fuse_min_max(dense, bm25, w_dense=0.7)
    assert fused == pytest.approx({"a": 0.7, "b": 0.3, "c": 0.5, "d": 0.0})
    assert [d for d, _ in sort_scores(fused)] == ["a", "c", "b", "d"]


def test_fuse_min_max_weights_bounds():
    with pytest.raises(ValueError):
        fuse_min_max({"a": 1}, {"a": 1}, w_dense=1.5)
    assert fuse_min_max({"a": 1.0, "b": 0.0}, {}, w_dense=1.0) == {"a": 1.0, "b": 0.0}


def test_rrf_hand_computed():
    fused = fuse_rrf({"a": 3, "b": 2, "c": 1}, {"c": 9, "a": 5}, k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert math.isclose(sum(fused.values()), 2 / 61 + 2 / 62 + 1 / 63)


def test_ranks_ties_are_deterministic():
    assert ranks_of({"b": 1.0, "a": 1.0, "c": 2.0}) == {"c": 1, "a": 2, "b": 3}


def test_reference_min_max_by_hand() -> None:
    """Retriever/merge_scores.py@2ecd1fc:36-37: (get(did, 0) - min) / (max - min), 0 for a constant list."""
    from diver.fusion import fuse_min_max

    dense = {"a": 0.9, "b": 0.5, "c": 0.3}
    bm25 = {"a": 10.0, "d": 4.0, "e": 2.0}
    fused = fuse_min_max(dense, bm25, 0.7, missing="reference")
    expected = {"a": 1.0, "b": 0.7 * (0.2 / 0.6) + 0.3 * (-2 / 8), "c": 0.3 * (-2 / 8),
                "d": 0.7 * (-0.3 / 0.6) + 0.3 * (2 / 8), "e": 0.7 * (-0.3 / 0.6)}  # fmt: skip
    assert fused.keys() == expected.keys()
    for doc, value in expected.items():
        assert abs(fused[doc] - value) < 1e-12, doc
    assert sorted(fused, key=fused.get, reverse=True) == ["a", "b", "c", "d", "e"]
    ours = fuse_min_max(dense, bm25, 0.7)  # ours: a missing document gets 0, so d and e beat c
    assert ours["d"] > ours["c"] and fused["d"] < fused["c"]
    # a constant list (one dense hit) normalises to 0 for every document: only BM25 counts
    assert fuse_min_max({"x": 0.5}, {"x": 3.0, "y": 1.0}, 0.5, missing="reference") == {"x": 0.5, "y": 0.0}
