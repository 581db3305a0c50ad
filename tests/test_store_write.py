"""The dense write path (issue 13): HNSW settings are honoured when a chroma collection is created and kept
when it is opened with other settings; ``Collection`` writes new chunk keys with ``add`` (an id chroma
already holds would keep its old vector), which must never duplicate, lose or leave a stale vector."""

from __future__ import annotations

import numpy as np
import pytest
from tests_support import make_settings

from diver.config import StoreSettings
from diver.engine import Engine
from diver.index.stores.chroma import ChromaStore, open_client
from diver.text.documents import Document


def _hnsw(store: ChromaStore) -> dict:
    return dict((store._collection.configuration_json or {}).get("hnsw") or {})


def test_settings_are_honoured_at_creation_and_an_existing_collection_keeps_its_own(tmp_path):
    made = StoreSettings(hnsw_max_neighbors=12, hnsw_construction_ef=40, hnsw_sync_threshold=5000)
    store = ChromaStore(open_client(made, tmp_path), "t.vectors", made, create=True)
    hnsw = _hnsw(store)
    assert (hnsw["max_neighbors"], hnsw["ef_construction"], hnsw["sync_threshold"]) == (12, 40, 5000)
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    store.add([f"k{i}" for i in range(50)], vectors)

    other = StoreSettings(hnsw_max_neighbors=24, hnsw_construction_ef=80, hnsw_sync_threshold=2000)
    for create in (True, False):  # Engine opens with create=True; rebuilds and readers with False
        again = ChromaStore(open_client(other, tmp_path), "t.vectors", other, create=create)
        hnsw = _hnsw(again)
        assert (hnsw["max_neighbors"], hnsw["ef_construction"], hnsw["sync_threshold"]) == (12, 40, 5000)
        assert again.count() == 50
        got = again.get_vectors(["k7"])["k7"]
        assert np.allclose(got, vectors[7], atol=1e-5)


def test_defaults_create_collections_with_the_write_path_settings(tmp_path):
    settings = StoreSettings()
    store = ChromaStore(open_client(settings, tmp_path), "t.defaults", settings, create=True)
    hnsw = _hnsw(store)
    assert hnsw["max_neighbors"] == settings.hnsw_max_neighbors
    assert hnsw["ef_construction"] == settings.hnsw_construction_ef
    assert hnsw["sync_threshold"] == settings.hnsw_sync_threshold


def test_add_keeps_a_held_id_s_vector_and_upsert_replaces_it(tmp_path):
    """The chroma behaviour the collection's use of ``add`` is designed around."""
    settings = StoreSettings()
    store = ChromaStore(open_client(settings, tmp_path), "t.add", settings, create=True)
    first, second = np.eye(4, dtype=np.float32)[:2]
    store.add(["a"], first[None])
    store.add(["a"], second[None])
    assert store.count() == 1 and np.allclose(store.get_vectors(["a"])["a"], first)
    store.upsert(["a"], second[None])
    assert store.count() == 1 and np.allclose(store.get_vectors(["a"])["a"], second)


def _consistent(col, embedder) -> None:
    """The store holds exactly the visible chunks, each with the vector of its text."""
    keys = sorted(col.catalog.all_keys())
    assert sorted(col.store.all_keys()) == keys
    texts = col.catalog.chunk_texts(keys)
    expected = embedder.embed_documents([texts[k] for k in keys])
    stored = col.store.get_vectors(keys)
    for key, vector in zip(keys, expected, strict=True):
        assert np.allclose(stored[key], vector, atol=1e-5), key


def test_reindexing_the_same_documents_never_duplicates_loses_or_keeps_stale_vectors(tmp_path):
    settings = make_settings(tmp_path, store={"write_batch_size": 1})
    a = Document(id="d1", text="planar graphs have at most 3n - 6 edges " * 3)
    b = Document(id="d1", text="a triangle's angles sum to 180 degrees " * 3)
    other = Document(id="d2", text="the pigeonhole principle counts boxes and pigeons")
    with Engine(settings) as eng:
        col = eng.collection("maths", create=True)
        col.upsert([a, other])
        _consistent(col, eng.embedder)
        report = col.upsert([a, other])  # unchanged: nothing written
        assert report.unchanged == 2 and col.store.count() == len(col.catalog.all_keys())
        col.upsert([b])  # replaced: a's chunks leave the store
        _consistent(col, eng.embedder)
        col.upsert([a])  # back to a: a's keys again, written anew
        _consistent(col, eng.embedder)
        col.upsert([b, a, b, a])  # within one call, one document per batch; duplicates reported
        _consistent(col, eng.embedder)
        assert col.catalog.get("d1").text == a.text


def test_a_crashed_batch_s_stray_vectors_never_survive_under_the_same_keys(tmp_path, monkeypatch):
    """A batch whose vectors reached chroma but whose catalog commit failed leaves strays under exactly the
    keys a retry writes (keys derive from id and content). Written wrong here: if they were not removed
    before the retry, ``add`` would keep them."""
    settings = make_settings(tmp_path)
    docs = [
        Document(id=f"d{i}", text=f"document {i} about graph colouring and {i} colours") for i in range(4)
    ]
    with Engine(settings) as eng:
        col = eng.collection("maths", create=True)
        real_embed = eng.embedder.embed_documents
        monkeypatch.setattr(eng.embedder, "embed_documents", lambda texts: -np.asarray(real_embed(texts)))

        def failing_commit(prepared, remove=()):
            raise OSError("disk full")

        monkeypatch.setattr(col.catalog, "commit", failing_commit)
        with pytest.raises(OSError):
            col.upsert(docs)
        assert col.store.count() > 0  # the strays are there
        monkeypatch.setattr(eng.embedder, "embed_documents", real_embed)
        monkeypatch.delattr(col.catalog, "commit")  # the class's own again
        col.upsert(docs)
        _consistent(col, eng.embedder)
    with Engine(settings) as eng:  # the flag left by the failure: reopened, rebuilt, still exact
        col = eng.collection("maths")
        _consistent(col, eng.embedder)


def test_an_existing_collection_keeps_its_space_whatever_the_setting(tmp_path):
    """Similarities follow the space the collection was created with, not today's ``hnsw_space``."""
    made = StoreSettings(hnsw_space="l2")
    store = ChromaStore(open_client(made, tmp_path), "t.space", made, create=True)
    store.upsert(["a", "b"], np.array([[1.0, 0.0], [3.0, 0.0]], dtype=np.float32))
    assert store.space == "l2"
    now = StoreSettings()  # cosine
    again = ChromaStore(open_client(now, tmp_path), "t.space", now, create=False)
    assert again.space == "l2"
    [ranked] = again.query(np.array([[2.9, 0.0]], dtype=np.float32), 2)
    assert [k for k, _ in ranked] == ["b", "a"]
    assert ranked[0][1] == pytest.approx(-0.01, abs=1e-4) and ranked[1][1] == pytest.approx(-3.61, abs=1e-3)
