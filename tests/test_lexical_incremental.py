"""BM25 kept fresh incrementally (issue 13): after adds, deletes and re-adds, the updated index scores
exactly like a full rebuild, for both scorings, with numba and without, across merges and restarts."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diver.index.lexical.bm25 as lexical
import diver.index.lexical.view as lexical_view
from diver.config import BM25Settings
from diver.index.catalog import Catalog, PreparedDocument
from diver.index.lexical.view import LexicalViews
from diver.text.documents import Chunk, Document, content_hash

WORDS = (
    "graph vertex edge planar triangle hypotenuse prime number theorem proof matrix eigenvalue integral "
    "limit series converge field group ring über naïve straße ñandú 日本語 θεώρημα число the and of a"
).split()


def prepared(doc_id: str, chunks: list[str]) -> PreparedDocument:
    text = "\n".join(chunks)
    pieces, start = [], 0
    for i, chunk in enumerate(chunks):
        pieces.append(Chunk(doc_id, i, chunk, start, start + len(chunk)))
        start += len(chunk) + 1
    doc = Document(id=doc_id, text=text)
    return PreparedDocument(doc, content_hash(doc), pieces)


@contextmanager
def patched(**values):
    old = {name: getattr(lexical_view, name) for name in values}
    for name, value in values.items():
        setattr(lexical_view, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(lexical_view, name, value)


def per_document(view, query: str) -> dict[str, list[float]]:
    """doc id -> the scores of its chunks in order, for the live documents of a view."""
    scores = view.index.score(query)
    ends = np.append(view.doc_starts[1:], view.index.num_rows)[: len(view.doc_starts)]
    return {
        doc_id: scores[start:end].tolist()
        for doc_id, start, end, live in zip(
            view.row_doc_ids, view.doc_starts, ends, view.doc_live, strict=True
        )
        if live
    }


def assert_same_as_rebuild(
    catalog: Catalog, incremental: LexicalViews, root: Path, queries: list[str]
) -> None:
    with catalog.snapshot() as db:
        view = incremental.current(db)
        fresh = LexicalViews("fresh", root / f"fresh-{catalog.generation}", catalog, incremental.settings)
        rebuilt = fresh._build(db, catalog.generation)
    assert set(view.doc_ids) == set(rebuilt.doc_ids)
    assert view.index.num_live == rebuilt.index.num_rows
    assert view.index.avgdl == rebuilt.index.avgdl
    for query in queries:
        mine, theirs = per_document(view, query), per_document(rebuilt, query)
        assert mine.keys() == theirs.keys()
        for doc_id, expected in theirs.items():
            np.testing.assert_allclose(
                mine[doc_id], expected, rtol=0, atol=1e-6, err_msg=f"{query!r} {doc_id}"
            )
        top_mine = view.top_documents(query, 5, set())
        top_theirs = rebuilt.top_documents(query, 5, set())
        assert len(top_mine) == len(top_theirs)
        cut = min((score for score, _ in top_theirs.values()), default=0.0)
        for doc_id, (score, _) in top_theirs.items():
            if score > cut + 1e-6:  # above the cut, not tied with a document the cut may drop instead
                assert top_mine[doc_id][0] == pytest.approx(score, abs=1e-6), (query, doc_id)


chunk_text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=30).map(" ".join)
document = st.lists(chunk_text, min_size=1, max_size=3)
operation = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 11), document),
    st.tuples(st.just("delete"), st.integers(0, 11), st.just([])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(document, min_size=0, max_size=8),
    steps=st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=5),
    queries=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join), min_size=2, max_size=4
    ),
    query_side=st.booleans(),
    merge_fraction=st.sampled_from([0.1, 1.0, 100.0]),
    max_segments=st.sampled_from([1, 3, 8]),
)
def test_random_adds_deletes_and_readds_score_like_a_rebuild(
    initial, steps, queries, query_side, merge_fraction, max_segments
):
    with (
        tempfile.TemporaryDirectory() as tmp,
        patched(MERGE_FRACTION=merge_fraction, MAX_SEGMENTS=max_segments),
    ):
        root = Path(tmp)
        catalog = Catalog(root / "catalog.sqlite", create=True)
        try:
            views = LexicalViews("c", root / "bm25", catalog, BM25Settings(query_side=query_side))
            catalog.commit([prepared(f"d{i}", chunks) for i, chunks in enumerate(initial)])
            assert_same_as_rebuild(catalog, views, root, queries)
            for step in steps:
                for kind, number, chunks in step:
                    if kind == "add":  # a new id, or a re-add that replaces the document
                        catalog.commit([prepared(f"d{number}", chunks)])
                    else:
                        catalog.delete([f"d{number}"])
                assert_same_as_rebuild(catalog, views, root, queries)
            assert views.counts["full_builds"] == 1
            reopened = LexicalViews("c", root / "bm25", catalog, views.settings)  # a restart: from disk
            assert_same_as_rebuild(catalog, reopened, root, queries)
            assert reopened.counts["full_builds"] == 0
        finally:
            catalog.close()


@pytest.mark.parametrize("query_side", [False, True])
def test_numpy_fallback_equals_numba_on_segments_with_deletes(monkeypatch, query_side):
    settings = BM25Settings(query_side=query_side)
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS, rng.integers(0, 40))) for _ in range(300)]
    index = lexical.LexicalIndex.build(texts[:200], settings)
    index = index.with_changes(lexical.LexicalIndex.build(texts[200:], settings).segments[0]).with_changes(
        deleted_rows=np.arange(0, 300, 7)
    )
    queries = [" ".join(rng.choice(WORDS, 3)) for _ in range(20)]
    if "accumulate" not in lexical._numba_kernels():
        pytest.skip("numba is not installed (extra 'bench')")
    compiled = [index.score(q) for q in queries]
    monkeypatch.setattr(lexical, "_numba_kernels", lambda: {"missing": True})
    for query, expected in zip(queries, compiled, strict=True):
        np.testing.assert_array_equal(index.score(query), expected)
        assert not index.score(query)[np.arange(0, 300, 7)].any()  # deleted rows score 0


@pytest.mark.parametrize("query_side", [False, True])
def test_merge_keeps_scores(query_side):
    settings = BM25Settings(query_side=query_side)
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(WORDS, rng.integers(1, 40))) + f" unique{i}" for i in range(400)]
    index = lexical.LexicalIndex.build(texts[:250], settings)
    for start in range(250, 400, 50):
        index = index.with_changes(
            lexical.LexicalIndex.build(texts[start : start + 50], settings).segments[0]
        )
    dead = np.sort(rng.choice(400, 90, replace=False))
    index = index.with_changes(deleted_rows=dead)
    merged = lexical.LexicalIndex(settings, [index.merged()])
    live = np.setdiff1d(np.arange(400), dead)
    rebuilt = lexical.LexicalIndex.build([texts[i] for i in live], settings)
    assert len(merged.segments) == 1 and merged.num_rows == len(live)
    assert (
        "unique0" not in merged.segments[0].vocab or 0 in live
    )  # a fully deleted term leaves the vocabulary
    for query in [" ".join(rng.choice(WORDS, 3)) for _ in range(20)] + ["unique7 graph", "unique399"]:
        before, after, full = index.score(query), merged.score(query), rebuilt.score(query)
        np.testing.assert_allclose(before[live], full, rtol=0, atol=1e-6)
        np.testing.assert_allclose(after, full, rtol=0, atol=1e-6)


def _docs(prefix: str, n: int, seed: int) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [
        Document(id=f"{prefix}{i}", text=" ".join(rng.choice(WORDS, rng.integers(5, 120)))) for i in range(n)
    ]


def _bm25(col, queries: list[str]) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.scores["bm25"]) for h in col.search(q, k=10, mode="bm25").hits] for q in queries]


def test_collection_writes_update_bm25_without_a_rebuild_and_match_a_fresh_collection(engine):
    queries = ["graph vertex", "prime number theorem", "über straße", "matrix eigenvalue integral limit"]
    first, more = _docs("a", 300, 1), _docs("b", 100, 2)
    col = engine.collection("live", create=True)
    col.upsert(first)
    col.search("warm", mode="bm25")
    assert col.lexical.counts["full_builds"] == 1
    col.upsert(more)  # +100 documents
    after_add = _bm25(col, queries)
    deleted = [f"a{i}" for i in range(0, 300, 3)]
    col.delete(deleted)  # -100 documents
    after_delete = _bm25(col, queries)
    col.upsert([Document(id="b5", text="graph vertex graph planar")])  # re-add: replaced
    after_readd = _bm25(col, queries)
    assert col.lexical.counts["full_builds"] == 1, col.lexical.counts  # no rebuild after the first
    assert col.lexical.counts["updates"] == 3
    manifests = sorted(p.name for p in (col.directory / "bm25").glob("gen-*.json"))
    assert manifests == [f"gen-{col.catalog.generation}.json"]

    fresh = engine.collection("fresh-add", create=True)
    fresh.upsert(first + more)
    assert _bm25(fresh, queries) == after_add
    fresh = engine.collection("fresh-delete", create=True)
    fresh.upsert([d for d in first if d.id not in set(deleted)] + more)
    assert _bm25(fresh, queries) == after_delete
    fresh.upsert([Document(id="b5", text="graph vertex graph planar")])
    assert _bm25(fresh, queries) == after_readd


def test_a_failed_bm25_write_leaves_the_previous_generation_and_the_next_search_is_exact(engine, monkeypatch):
    docs = _docs("a", 50, 3)
    col = engine.collection("crash", create=True)
    col.upsert(docs[:40])
    col.search("graph", mode="bm25")
    col.upsert(docs[40:])
    col.delete(["a1", "a2"])

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lexical_view, "write_manifest", disk_full)
    with pytest.raises(OSError):
        col.search("graph", mode="bm25")
    monkeypatch.undo()
    directory = col.directory / "bm25"
    assert [p.name for p in directory.glob("gen-*.json")] != [f"gen-{col.catalog.generation}.json"]
    queries = ["graph vertex", "prime theorem", "naïve ñandú"]
    expected = _bm25(col, queries)  # retried in memory from the previous view
    reopened = LexicalViews("crash", directory, col.catalog, col.lexical.settings)
    col.lexical = reopened  # as a restarted process would: the old manifest plus the catalog's changes
    assert _bm25(col, queries) == expected
    assert reopened.counts["loads"] == 1 and reopened.counts["full_builds"] == 0
    fresh = engine.collection("fresh", create=True)
    fresh.upsert([d for d in docs if d.id not in {"a1", "a2"}])
    assert _bm25(fresh, queries) == expected


def test_unreadable_segment_falls_back_to_a_full_build(engine):
    docs = _docs("a", 30, 4) + _docs("b", 5, 5)
    col = engine.collection("torn", create=True)
    col.upsert(docs[:30])
    col.search("graph", mode="bm25")
    directory = col.directory / "bm25"
    [segment] = list(directory.glob("seg-*"))
    (segment / "tf.npy").write_bytes(b"\x93NUMPY torn")
    col.upsert(docs[30:])
    reopened = LexicalViews("torn", directory, col.catalog, col.lexical.settings)
    col.lexical = reopened
    queries = ["graph vertex", "prime theorem"]
    fresh = engine.collection("fresh", create=True)
    fresh.upsert(docs)
    assert _bm25(col, queries) == _bm25(fresh, queries)
    assert reopened.counts["full_builds"] == 1 and reopened.counts["loads"] == 0
