"""Search returns min(k, documents) whatever the length distribution, filters cut before top-k, queries are
cleaned like documents, and every hit carries what a citation needs (issues 10 and 11)."""

from __future__ import annotations

import random

import pytest
from tests_support import make_settings

from diver.engine import Engine
from diver.errors import DocumentNotFound, InputError
from diver.text.documents import make_document

WORDS = [f"w{i}" for i in range(400)]


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


@pytest.fixture
def uneven(tmp_path):
    """401 documents, one of them ~225 chunks long (the issue's reproduction), chunks of 16 tokens."""
    settings = make_settings(tmp_path, chunking={"max_tokens": 16})
    rng = random.Random(7)
    # the giant document is about the test queries' words: all of its chunks outrank the small documents
    giant = " ".join(rng.choice(WORDS[:12]) for _ in range(225 * 13))
    docs = [make_document("giant", giant, {"source": "books/giant.txt", "shelf": 0})]
    docs += [
        make_document(f"d{i:03d}", _text(rng, 8), {"source": f"notes/n{i:03d}.md", "shelf": i % 100})
        for i in range(400)
    ]
    with Engine(settings) as engine:
        col = engine.collection("uneven", create=True)
        col.upsert(docs)
        yield col


@pytest.fixture
def spread(tmp_path):
    """Document lengths over three orders of magnitude: 1 to ~1,000 chunks."""
    settings = make_settings(tmp_path, chunking={"max_tokens": 16})
    rng = random.Random(11)
    lengths = [1] * 150 + [10] * 40 + [100] * 8 + [1000] * 2
    docs = [make_document(f"doc{i}", _text(rng, n * 13)) for i, n in enumerate(lengths)]
    # the longest documents are about the query's words, so their chunks crowd the top of the ANN list
    topical = " ".join(rng.choice(WORDS[:12]) for _ in range(1000 * 13))
    docs[-1] = make_document("doc199", topical)
    docs[-3] = make_document("doc197", topical[: 100 * 13 * 3])
    with Engine(settings) as engine:
        col = engine.collection("spread", create=True)
        col.upsert(docs)
        yield col


def test_giant_document_does_not_starve_dense(uneven):
    assert uneven.info().chunks > 600
    for k in (10, 200):
        result = uneven.search("w1 w2 w3 w4", k=k, mode="dense")
        assert len(result.hits) == k
        assert len({h.id for h in result.hits}) == k
    everything = uneven.search("w5 w6", k=1000, mode="dense")
    assert len(everything.hits) == 401


def test_hybrid_has_dense_scores_for_its_candidates(uneven):
    result = uneven.search("w1 w2 w3 w4", k=10, mode="hybrid")
    assert len(result.hits) == 10
    assert all("dense" in h.scores for h in result.hits)


@pytest.mark.parametrize("k", [1, 10, 100, 200])
def test_lengths_over_three_orders_of_magnitude(spread, k):
    for mode in ("dense", "hybrid"):
        [result] = spread.search_many(["w1 w7 w9"], k=k, mode=mode, exclude=[{"doc0", "doc199"}])
        ids = [h.id for h in result.hits]
        assert len(ids) == min(k, 198) == len(set(ids))
        assert "doc0" not in ids and "doc199" not in ids


def test_dense_ranking_equals_exact_rollup(spread):
    """The documents returned are the true MAX-over-chunks top-k (exact numpy over every stored vector)."""
    import numpy as np

    from diver.index.dense.search import similarities

    query = "w3 w4 w5"
    got = [h.id for h in spread.search(query, k=20, mode="dense").hits]
    keys = sorted(spread.catalog.all_keys())
    stored = spread.store.get_vectors(keys)
    vector = spread.engine.embedder.embed_queries([query])
    sims = similarities(vector, np.stack([stored[k] for k in keys]), "cosine")[0]
    with spread.catalog.snapshot() as db:
        resolved = spread.catalog.resolve(db, keys)
    best: dict[str, float] = {}
    for key, sim in zip(keys, sims, strict=True):
        doc = resolved[key][0]
        best[doc] = max(best.get(doc, -2.0), float(sim))
    exact = sorted(best, key=lambda d: (-best[d], d))[:20]
    assert len(set(got) & set(exact)) >= 19  # HNSW is approximate; roll-up must not lose documents


def test_queries_are_cleaned_like_documents(engine):
    col = engine.collection("fin", create=True)
    col.upsert(
        [
            make_document("eq", "General financial equilibrium in markets with many goods"),
            make_document("other", "Photosynthesis in the leaves of plants"),
        ]
    )
    for mode in ("bm25", "dense", "hybrid"):
        plain = col.search("financial equilibrium", k=1, mode=mode).hits
        fancy = col.search("ﬁnancial ｅｑｕｉｌｉｂｒｉｕｍ", k=1, mode=mode).hits
        assert fancy and plain and fancy[0].id == plain[0].id == "eq"
        assert fancy[0].scores == plain[0].scores


def test_query_of_only_control_characters_refused(engine):
    col = engine.collection("fin", create=True)
    col.upsert([make_document("eq", "equilibrium")])
    with pytest.raises(InputError, match="empty"):
        col.search("\x01\x02", k=1)


def test_selective_filter_cuts_before_top_k(uneven):
    # shelf 7 matches 4 of 401 documents (1%): every mode returns all four, never fewer
    for mode in ("bm25", "dense", "hybrid"):
        result = uneven.search("w1 w2 w3 w4 w5 w6 w7 w8", k=10, mode=mode, where={"shelf": 7})
        ids = {h.id for h in result.hits}
        assert ids <= {"d007", "d107", "d207", "d307"}
        if mode != "bm25":
            assert ids == {"d007", "d107", "d207", "d307"}
        assert all(h.metadata["shelf"] == 7 for h in result.hits)


def test_filter_operators_and_source_prefix(uneven):
    def ids(**kwargs):
        return {h.id for h in uneven.search("w1 w2", k=500, mode="dense", **kwargs).hits}

    assert ids(where={"shelf": {"$in": [1, 2]}}) == {"d001", "d101", "d201", "d301", "d002", "d102", "d202", "d302"}
    assert ids(where={"$and": [{"shelf": {"$gte": 98}}, {"source": {"$ne": "notes/n099.md"}}]}) == {
        "d098", "d198", "d298", "d398", "d199", "d299", "d399"
    }
    assert ids(where={"$or": [{"shelf": 5}, {"source": "books/giant.txt"}]}) == {
        "giant", "d005", "d105", "d205", "d305"
    }
    assert ids(where={"shelf": {"$nin": list(range(1, 100))}}) == {"giant", "d000", "d100", "d200", "d300"}
    assert ids(source="books/") == {"giant"}
    assert ids(source="notes/n01") == {f"d{i:03d}" for i in range(10, 20)}
    assert ids(where={"shelf": {"$lt": 1}}, source="notes/") == {"d000", "d100", "d200", "d300"}
    assert ids(where={"shelf": "no such value"}) == set()


def test_large_filter_uses_the_ann_path_and_still_fills_k(uneven, monkeypatch):
    import diver.index.dense.search as dense_search

    monkeypatch.setattr(dense_search, "EXACT_FILTER_CHUNKS", 0)  # force the post-filtered ANN loop
    monkeypatch.setattr(uneven.engine.settings.store, "dense_search", "hnsw")  # not the in-memory matrix
    result = uneven.search("w1 w2", k=10, mode="dense", where={"shelf": {"$lt": 10}})
    assert result.dense_path == "hnsw"
    assert len(result.hits) == 10
    assert all(h.metadata["shelf"] < 10 for h in result.hits)


@pytest.mark.parametrize(
    "where",
    [{}, {"$and": []}, {"a": {"$regex": "x"}}, {"a": {"$in": "x"}}, {"a": [1]}, {"$bad": 1}, {"a": {"$eq": 1, "$ne": 2}}],
)
def test_bad_filters_refused(uneven, where):
    with pytest.raises(InputError, match="where"):
        uneven.search("w1", where=where)


def test_hits_carry_citations(uneven):
    for mode in ("bm25", "dense", "hybrid"):
        for hit in uneven.search("w1 w2 w3", k=5, mode=mode).hits:
            doc = uneven.get(hit.id)
            assert hit.source == doc.metadata["source"]
            start, end = hit.span
            assert doc.text[start:end] == hit.highlight
            assert hit.chunk is not None
            [(index, c_start, _, text)] = uneven.chunk_window(hit.id, hit.chunk, 0)
            assert index == hit.chunk and c_start == start and text.startswith(hit.highlight)


def test_chunk_window(uneven):
    count = uneven.chunk_count("giant")
    assert count > 200
    rows = uneven.chunk_window("giant", 100, 2)
    assert [r[0] for r in rows] == [98, 99, 100, 101, 102]
    text = uneven.get("giant").text
    assert all(text[a:b] == t for _, a, b, t in rows)
    assert [r[0] for r in uneven.chunk_window("giant", 0, 3)] == [0, 1, 2, 3]
    assert [r[0] for r in uneven.chunk_window("giant", count - 1, 1)] == [count - 2, count - 1]
    with pytest.raises(InputError):
        uneven.chunk_window("giant", count, 1)
    with pytest.raises(DocumentNotFound):
        uneven.chunk_window("nope", 0, 1)
