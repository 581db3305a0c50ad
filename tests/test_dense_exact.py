"""Exact dense search from the in-memory matrix (diver/index/dense/exact.py) and the switch to HNSW by size.

Exact and HNSW return the same top 10 on real MiniLM vectors of the TheoremQA theorems; the path taken is
the one the size calls for (``SearchResult.dense_path``); a write by this collection object or by another
writer on the same data directory (its own catalog connection and vector store) is seen by the next exact
search; filters and excludes stay exact.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from tests_support import make_settings

from diver.engine import Engine
from diver.index.catalog import Catalog
from diver.index.collection import Collection
from diver.index.stores.chroma import ChromaStore
from diver.text.documents import make_document

WORDS = [f"w{i}" for i in range(300)]


def _docs(n: int, seed: int = 3) -> list:
    rng = random.Random(seed)
    return [
        make_document(f"d{i:03d}", " ".join(rng.choice(WORDS) for _ in range(6 + i % 40)), {"shelf": i % 10})
        for i in range(n)
    ]


def _set_mode(col: Collection, mode: str, below: int | None = None) -> None:
    store = col.engine.settings.store  # the planner reads the engine's settings object
    store.dense_search = mode
    if below is not None:
        store.dense_exact_below = below


def _dense_ids(col: Collection, query: str, k: int = 10, **kwargs) -> tuple[list[str], str | None]:
    result = col.search(query, k=k, mode="dense", **kwargs)
    return [h.id for h in result.hits], result.dense_path


@pytest.fixture
def small(tmp_path):
    settings = make_settings(tmp_path, chunking={"max_tokens": 16})
    with Engine(settings) as engine:
        col = engine.collection("small", create=True)
        col.upsert(_docs(200))
        yield col


@pytest.fixture(scope="module")
def theorem_collection(tmp_path_factory, minilm, theorems):
    """The 354 TheoremQA theorems embedded with the real offline MiniLM (vectors cached on disk)."""
    settings = make_settings(tmp_path_factory.mktemp("theorems"), embedding={"cache": True})
    with Engine(settings, embedder=minilm) as engine:
        col = engine.collection("theorems", create=True)
        col.upsert([make_document(name, f"{name}: {text}") for name, text in theorems])
        yield col


QUESTIONS = [
    "How many ways can 8 people be seated around a round table?",
    "Is the function f(x) = x^3 uniformly continuous on the real line?",
    "What is the determinant of a 3x3 matrix with two equal rows?",
    "Compute the entropy of a fair six-sided die in bits.",
    "Find the eigenvalues of a symmetric matrix",
    "What is the probability that a Poisson random variable with mean 2 equals 0?",
    "Does the series sum 1/n^2 converge?",
    "What is the maximum flow in a network with given capacities?",
]


def test_exact_and_hnsw_agree_on_real_minilm_theorems(theorem_collection):
    col = theorem_collection
    try:
        for question in QUESTIONS:
            found = {}
            for mode in ("exact", "hnsw"):
                _set_mode(col, mode)
                result = col.search(question, k=10, mode="dense")
                assert result.dense_path == mode
                found[mode] = {h.id: h.scores["dense"] for h in result.hits}
            assert len(found["exact"]) == 10
            assert list(found["hnsw"]) == list(found["exact"]), question
            for doc_id, score in found["exact"].items():
                assert found["hnsw"][doc_id] == pytest.approx(score, abs=1e-4)
    finally:
        _set_mode(col, "auto")


def test_hybrid_reports_the_path_and_filters_stay_exact_on_real_vectors(theorem_collection):
    col = theorem_collection
    query = QUESTIONS[0]
    result = col.search(query, k=10, mode="hybrid")
    assert result.dense_path == "exact"  # 354 theorems: far below the default crossover
    assert col.search(query, k=10, mode="bm25").dense_path is None
    top = [h.id for h in col.search(query, k=30, mode="dense").hits]
    exclude = set(top[:5])
    [res] = col.search_many([query], k=10, mode="dense", exclude=[exclude])
    assert [h.id for h in res.hits] == [d for d in top if d not in exclude][:10]


def test_switch_by_size(small):
    chunks = small.info().chunks
    assert chunks > 200
    _set_mode(small, "auto", below=chunks + 1)
    assert _dense_ids(small, "w1 w2")[1] == "exact"
    assert small.dense.exact.current is not None and small.dense.exact.current.rows == chunks
    _set_mode(small, "auto", below=chunks)  # at the threshold: HNSW, and the matrix is released
    assert _dense_ids(small, "w1 w2")[1] == "hnsw"
    assert small.dense.exact.current is None
    assert small.search("w1 w2", k=5, mode="hybrid").dense_path == "hnsw"
    _set_mode(small, "auto", below=0)
    assert _dense_ids(small, "w1 w2")[1] == "hnsw"
    _set_mode(small, "exact")
    assert _dense_ids(small, "w1 w2")[1] == "exact"
    # a selective filter above the crossover is scored exactly from the store's vectors
    _set_mode(small, "auto", below=0)
    assert small.search("w1", k=5, mode="dense", where={"shelf": 1}).dense_path == "exact-filter"


def test_exact_equals_brute_force_with_filters_and_excludes(small):
    _set_mode(small, "exact")
    keys = sorted(small.catalog.all_keys())
    stored = small.store.get_vectors(keys)
    with small.catalog.snapshot() as db:
        resolved = small.catalog.resolve(db, keys)
        docs = small.catalog.documents(db, sorted({d for d, _ in resolved.values()}))
    matrix = np.stack([stored[k] for k in keys])
    for query in ("w3 w4 w5", "w7", "w100 w200 w250"):
        vector = small.engine.embedder.embed_queries([query])[0]
        sims = matrix @ vector / np.linalg.norm(matrix, axis=1) / np.linalg.norm(vector)
        best: dict[str, float] = {}
        for key, sim in zip(keys, sims.tolist(), strict=True):
            doc = resolved[key][0]
            best[doc] = max(best.get(doc, -2.0), sim)
        ranked = sorted(best, key=lambda d: (-best[d], d))
        exclude = set(ranked[:3])
        [res] = small.search_many([query], k=15, mode="dense", exclude=[exclude], where={"shelf": {"$lt": 5}})
        assert res.dense_path == "exact"
        want = [d for d in ranked if d not in exclude and docs[d][1]["shelf"] < 5][:15]
        assert [h.id for h in res.hits] == want


def _other_writer(col: Collection) -> Collection:
    """A second writer on the same data directory, as another process has: its own catalog connection and
    vector store handle, sharing nothing in memory with ``col`` (not even the exact matrix)."""
    store = col.engine.backend.open(col.meta["store_name"], create=False)
    catalog = Catalog(col.directory / "catalog.sqlite", create=False)
    return Collection(col.engine, col.name, col.directory, dict(col.meta), catalog, store)


@pytest.mark.parametrize("writer", ["same", "other"])
def test_a_write_is_seen_by_the_next_exact_search(small, writer):
    _set_mode(small, "exact")
    target = "zebra quokka narwhal"
    ids, _ = _dense_ids(small, target, k=5)
    assert "new" not in ids
    before = small.dense.exact.current
    assert before is not None
    other = _other_writer(small) if writer == "other" else small
    try:
        other.upsert([make_document("new", target)])  # add
        ids, path = _dense_ids(small, target, k=5)
        assert path == "exact" and ids[0] == "new"
        other.upsert([make_document("d000", target + " okapi")])  # re-index of an existing document
        ids, _ = _dense_ids(small, target, k=5)
        assert set(ids[:2]) == {"new", "d000"}
        other.upsert([make_document("d000", "w1 w2 w3")])  # and back: its old chunk must be gone
        hits = small.search(target, k=5, mode="dense").hits
        assert hits[0].id == "new" and "d000" not in [h.id for h in hits[:2]]
        other.delete(["new"])  # delete
        ids, _ = _dense_ids(small, target, k=300)
        assert "new" not in ids and len(ids) == 200
        current = small.dense.exact.current
        assert current is not None and current.rows == small.info().chunks
        assert current.generation > before.generation
    finally:
        if other is not small:
            other.close()


def test_another_engine_on_the_data_dir_writes_between_searches(tmp_path):
    settings = make_settings(tmp_path, chunking={"max_tokens": 16}, store={"dense_search": "exact"})
    with Engine(settings) as engine:
        col = engine.collection("col", create=True)
        col.upsert(_docs(50))
        assert _dense_ids(col, "zebra quokka")[1] == "exact"
    with Engine(settings) as engine:  # another engine (a process taking over the directory) writes
        engine.collection("col").upsert([make_document("new", "zebra quokka")])
        engine.collection("col").delete(["d001"])
    with Engine(settings) as engine:
        ids, path = _dense_ids(engine.collection("col"), "zebra quokka", k=100)
        assert path == "exact" and ids[0] == "new" and "d001" not in ids and len(ids) == 50


def test_store_query_needs_no_count_and_handles_empty(tmp_path):
    from diver.config import StoreSettings
    from diver.index.stores.chroma import open_client

    settings = StoreSettings()
    store = ChromaStore(open_client(settings, tmp_path), "empty-store", settings, create=True)
    assert store.query(np.ones((2, 8), np.float32), 5) == [[], []]
    store.upsert(["a", "b"], np.eye(2, 8, dtype=np.float32))
    got = store.query(np.eye(1, 8, dtype=np.float32), 10)[0]
    assert [k for k, _ in got] == ["a", "b"] and got[0][1] == pytest.approx(1.0, abs=1e-5)


def test_search_beam_stores_the_configured_ef(tmp_path):
    from diver.config import StoreSettings
    from diver.index.stores.chroma import open_client

    client = open_client(StoreSettings(), tmp_path)
    old = StoreSettings(hnsw_search_ef=20)
    ChromaStore(client, "beam-store", old, create=True).upsert(["a"], np.ones((1, 8), np.float32))
    wanted = StoreSettings(hnsw_search_ef=150)
    store = ChromaStore(client, "beam-store", wanted, create=False)
    assert store.search_beam() == 150  # the loaded index's beam is smaller: ask for at least 150 results
    again = client.get_collection("beam-store", embedding_function=None)
    assert again.configuration_json["hnsw"]["ef_search"] == 150  # stored for the next load
    assert ChromaStore(client, "beam-store", wanted, create=False).search_beam() == 0


def test_hnsw_path_still_fills_k_past_a_giant_document(tmp_path):
    settings = make_settings(tmp_path, chunking={"max_tokens": 16}, store={"dense_search": "hnsw"})
    rng = random.Random(7)
    giant = " ".join(rng.choice(WORDS[:12]) for _ in range(150 * 13))  # ~150 chunks about the query
    with Engine(settings) as engine:
        col = engine.collection("giant", create=True)
        col.upsert([make_document("giant", giant), *_docs(60)])
        result = col.search("w1 w2 w3 w4", k=20, mode="dense")
        assert result.dense_path == "hnsw"
        assert len({h.id for h in result.hits}) == 20
