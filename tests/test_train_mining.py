"""Hard-negative mining with the collection's hybrid retriever: never a positive, guard against false
negatives (hashing embedder: mechanics only)."""

from __future__ import annotations

import pytest

from diver.errors import InputError
from diver.text.documents import make_document
from diver.train.mining import mine_hard_negatives
from diver.train.pairs import TrainingPair

TOPICS = ["prime numbers divisibility", "heat engine efficiency", "matrix eigenvalues", "graph coloring",
          "bayes rule probability", "orbital mechanics gravity", "fourier series signal", "market supply demand"]  # fmt: skip


@pytest.fixture
def corpus_collection(engine):
    col = engine.collection("minecorp", create=True)
    docs = [make_document(f"d{t}-{v}", f"{topic} variant {v}: notes on {topic} and more {topic}", {})
            for t, topic in enumerate(TOPICS) for v in range(4)]  # fmt: skip
    col.upsert(docs)
    return col


def test_mined_negatives_never_include_a_positive(corpus_collection) -> None:
    pairs = [TrainingPair(query=f"question about {topic}", positive_id=f"d{t}-0") for t, topic in enumerate(TOPICS)]
    # the same query with a second positive: neither may become a negative of the other
    pairs.append(TrainingPair(query=f"question about {TOPICS[0]}", positive_id="d0-1"))
    mined, report = mine_hard_negatives(corpus_collection, pairs, n_negatives=5, k=20, margin=-10.0)
    positives: dict[str, set[str]] = {}
    for pair in pairs:
        positives.setdefault(pair.query, set()).add(pair.positive_id)
    assert report.mined > 0 and report.skipped_false_negatives == 0
    for pair in mined:
        assert pair.negative_ids, pair
        assert not set(pair.negative_ids) & positives[pair.query]
        assert len(pair.negative_ids) == len(set(pair.negative_ids)) <= 5
        for doc_id in pair.negative_ids:
            corpus_collection.get(doc_id)  # a real document
    # hard: the top negatives of a topic query come from the same topic
    assert mined[1].negative_ids[0].startswith("d1-")


def test_given_negatives_are_kept_first(corpus_collection) -> None:
    pair = TrainingPair(query="matrix eigenvalues", positive_id="d2-0", negative_ids=["d5-3"])
    [mined], _ = mine_hard_negatives(corpus_collection, [pair], n_negatives=3, margin=-10.0)
    assert mined.negative_ids[0] == "d5-3" and len(mined.negative_ids) == 3
    assert "d2-0" not in mined.negative_ids


def test_false_negative_guard_skips_candidates_near_the_positive(corpus_collection) -> None:
    pairs = [TrainingPair(query="graph coloring", positive_id="d3-0")]
    # margin 10: every candidate scores above (positive - 10): all are treated as false negatives
    mined, report = mine_hard_negatives(corpus_collection, pairs, n_negatives=3, margin=10.0)
    assert mined[0].negative_ids == [] and report.skipped_false_negatives > 0 and report.without_negatives == 1
    # a candidate with the positive's exact text scores like it: skipped at margin 0.0
    corpus_collection.upsert([make_document("dup", corpus_collection.get("d3-0").text, {})])
    mined, report = mine_hard_negatives(corpus_collection, pairs, n_negatives=3, margin=0.0)
    assert "dup" not in mined[0].negative_ids and report.skipped_false_negatives >= 1


def test_inline_positive_and_bad_arguments(corpus_collection) -> None:
    pairs = [TrainingPair(query="fourier series", positive_text="fourier series of a periodic signal")]
    mined, _ = mine_hard_negatives(corpus_collection, pairs, n_negatives=2, margin=-10.0)
    assert len(mined[0].negative_ids) == 2
    with pytest.raises(InputError):
        mine_hard_negatives(corpus_collection, pairs, n_negatives=-1)
    with pytest.raises(InputError, match="positive not in the collection"):
        mine_hard_negatives(corpus_collection, [TrainingPair(query="x y", positive_id="nope")], n_negatives=1)
