"""The vector-store interface (diver/index/stores/base.py): the contract every backend meets, run against
chroma and against a second, in-memory backend defined here; and the collection, dense rebuild and reindex
working through the interface alone (an engine whose backend is the in-memory one never touches chroma)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from tests_support import make_settings

from diver.config import StoreSettings
from diver.engine import Engine
from diver.errors import ConfigError
from diver.index.stores import StoreBackend, VectorStore, open_backend
from diver.index.stores.chroma import ChromaBackend
from diver.text.documents import Document


class MemoryStore(VectorStore):
    """Exact cosine search over a dict: the smallest honest implementation of the interface."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.space = "cosine"
        self.vectors: dict[str, np.ndarray] = {}

    def count(self) -> int:
        return len(self.vectors)

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            self.vectors.setdefault(key, np.asarray(vector, dtype=np.float32))

    def upsert(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            self.vectors[key] = np.asarray(vector, dtype=np.float32)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.vectors.pop(key, None)

    def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def all_keys(self) -> list[str]:
        return list(self.vectors)

    def query(self, vectors: np.ndarray, n: int, keys: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        candidates = [k for k in (keys if keys is not None else self.vectors) if k in self.vectors]
        out = []
        for query in np.asarray(vectors, dtype=np.float32):
            q = query / max(float(np.linalg.norm(query)), 1e-12)
            scored = [(k, float(q @ (v / max(float(np.linalg.norm(v)), 1e-12)))) for k, v in ((k, self.vectors[k]) for k in candidates)]
            scored.sort(key=lambda item: (-item[1], item[0]))
            out.append(scored[:n] if n > 0 else [])
        return out


class MemoryBackend(StoreBackend):
    kind: ClassVar[str] = "memory"
    stores: ClassVar[dict[str, MemoryStore]] = {}  # shared by every engine of the test, as a server would be

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        self.private = False
        self.lazy_persistence = False
        self.closed = False

    def open(self, name: str, create: bool) -> MemoryStore:
        if name not in self.stores:
            if not create:
                raise KeyError(name)
            self.stores[name] = MemoryStore(name)
        return self.stores[name]

    def names(self) -> list[str]:
        return sorted(self.stores)

    def drop(self, name: str) -> None:
        self.stores.pop(name, None)

    def store_name(self, store_id: str, collection: str, version: int | None = None) -> str:
        return f"{store_id}/{collection}" + (f"@{version}" if version is not None else "")

    def close(self) -> None:
        self.closed = True


@pytest.fixture(params=["chroma", "memory", "milvus"])
def backend(request, tmp_path) -> StoreBackend:
    if request.param == "chroma":
        made: StoreBackend = ChromaBackend(StoreSettings(), tmp_path)
    elif request.param == "milvus":
        from diver.index.stores.milvus import MilvusBackend

        server = request.getfixturevalue("milvus_server")  # a real milvus-lite server process
        prefix = "t" + secrets.token_hex(4)  # a deployment of its own per test
        made = MilvusBackend(StoreSettings(backend="milvus", milvus_uri=server.uri, milvus_prefix=prefix), tmp_path)
    else:
        MemoryBackend.stores = {}
        made = MemoryBackend(StoreSettings(), tmp_path)
    yield made
    made.close()


def _unit(rows: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_writes_reads_and_counts_by_key(backend):
    store = backend.open(backend.store_name("abcd", "notes"), create=True)
    vectors = _unit([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    store.add(["a", "b", "c"], vectors)
    assert store.count() == 3 and sorted(store.all_keys()) == ["a", "b", "c"]
    store.upsert(["b"], _unit([[0, 0, 0, 1]]))
    got = store.get_vectors(["b", "missing"])
    assert list(got) == ["b"] and np.allclose(got["b"], [0, 0, 0, 1], atol=1e-6)
    store.delete(["a", "never-there"])
    assert sorted(store.all_keys()) == ["b", "c"] and store.count() == 2


def test_query_ranks_by_similarity_and_honours_a_key_filter(backend):
    store = backend.open(backend.store_name("abcd", "notes"), create=True)
    assert store.query(_unit([[1, 0, 0]]), 5) == [[]]  # empty store: no error, no results
    store.upsert(["x", "y", "z"], _unit([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1]]))
    [ranked] = store.query(_unit([[1, 0, 0]]), 2)
    assert [k for k, _ in ranked] == ["x", "y"]
    assert ranked[0][1] == pytest.approx(1.0, abs=1e-5) and ranked[1][1] == pytest.approx(0.8, abs=1e-5)
    [only] = store.query(_unit([[1, 0, 0]]), 5, keys=["y", "z"])  # the filter applies before the top-n cut
    assert [k for k, _ in only] == ["y", "z"]
    assert store.query(_unit([[1, 0, 0]]), 5, keys=[]) == [[]]
    assert len(store.query(_unit([[1, 0, 0], [0, 0, 1]]), 10)) == 2


def test_names_are_exact_and_drop_is_idempotent(backend):
    live, copy = backend.store_name("abcd", "notes"), backend.store_name("abcd", "notes", 17)
    other = backend.store_name("abcd", "notes-v2")
    assert len({live, copy, other, backend.store_name("efgh", "notes")}) == 4
    for name in (live, copy, other):
        backend.open(name, create=True).upsert(["k"], _unit([[1, 0]]))
    backend.drop(copy)
    backend.drop(copy)  # already gone: not an error
    assert {live, other} <= set(backend.names()) and copy not in backend.names()


def test_an_unknown_backend_is_a_config_error(tmp_path):
    settings = StoreSettings.model_construct(backend="nope")
    with pytest.raises(ConfigError, match="store.backend must be one of chroma, milvus"):
        open_backend(settings, tmp_path)


# -- the collection through the interface alone ----------------------------------------------------------
DOCS = [Document(id=f"d{i}", text=f"note {i} about {topic}", metadata={"shelf": i % 2}) for i, topic in enumerate(
    ["planar graphs and colouring", "prime numbers and sieves", "graph colouring bounds", "sorting algorithms",
     "hash tables", "binary search trees", "graph traversal by depth", "prime factorisation"]
)]  # fmt: skip


def _memory_engine(settings) -> Engine:
    engine = Engine(settings)
    engine._backend = MemoryBackend(settings.store, settings.data_dir)
    return engine


def test_a_collection_on_another_backend_ranks_as_on_chroma(tmp_path):
    MemoryBackend.stores = {}
    rankings = {}
    for kind in ("chroma", "memory"):
        settings = make_settings(tmp_path / kind, store={"dense_search": "hnsw"})
        engine = Engine(settings) if kind == "chroma" else _memory_engine(settings)
        with engine:
            col = engine.collection("notes", create=True)
            col.upsert(DOCS)
            col.delete(["d3"])
            rankings[kind] = {
                mode: [h.id for h in col.search("graph colouring", k=5, mode=mode).hits] for mode in ("dense", "hybrid")
            }
            rankings[kind]["filtered"] = [
                h.id for h in col.search("graph colouring", k=5, mode="dense", where={"shelf": 0}).hits
            ]
    assert rankings["memory"] == rankings["chroma"]
    assert "d3" not in rankings["memory"]["dense"] and len(rankings["memory"]["dense"]) == 5
    assert rankings["memory"]["filtered"] and all(int(d[1:]) % 2 == 0 for d in rankings["memory"]["filtered"])
    # no chroma files were made for the in-memory engine
    assert not (tmp_path / "memory" / "diver-data" / "chroma").exists()


def test_rebuild_switches_stores_and_drops_the_old_one_through_the_interface(tmp_path):
    MemoryBackend.stores = {}
    settings = make_settings(tmp_path)
    with _memory_engine(settings) as engine:
        col = engine.collection("notes", create=True)
        col.upsert(DOCS)
        assert col.catalog.get_meta("dirty") != "1"  # durable backend: write calls are not marked
        old = col.meta["store_name"]
        col.rebuild_dense()
        new = col.meta["store_name"]
        assert new != old and engine.backend.names() == [new]
        assert "stale_store_names" not in col.meta and col.store.count() == len(col.catalog.all_keys())
        assert [h.id for h in col.search("prime", k=2, mode="dense").hits][0] in {"d1", "d7"}
        engine.drop("notes")
        assert engine.backend.names() == []
