"""ef_search follows the collection's size (store.hnsw_search_ef_by_size; measured table in dense/search.py)."""

from __future__ import annotations

import numpy as np
import pytest

from diver.config import StoreSettings
from diver.index.dense.search import dense_documents, search_beam_for


@pytest.mark.parametrize(
    ("chunks", "beam"),
    [(10_000, 100), (166_780, 100), (200_000, 100), (200_001, 400), (1_001_647, 400), (1_200_000, 400),
     (2_000_000, 800), (5_000_000, 2000)],
)
def test_beam_grows_with_the_collection(chunks, beam):
    assert search_beam_for(chunks, StoreSettings()) == beam


def test_beam_is_never_below_the_setting_and_can_be_fixed():
    assert search_beam_for(1_000_000, StoreSettings(hnsw_search_ef=600)) == 600
    assert search_beam_for(10_000, StoreSettings(hnsw_search_ef=600)) == 600
    assert search_beam_for(1_000_000, StoreSettings(hnsw_search_ef_by_size=False)) == 100


class _Store:
    """Records how many results each query asked for; returns ranked chunk keys of distinct documents."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def query(self, vectors, n, keys=None):
        self.asked.append(n)
        return [[(f"d{i}#0", 1.0 - i / 10_000) for i in range(n)] for _ in range(len(vectors))]


class _Catalog:
    def resolve(self, db, keys):
        return {key: (key.split("#")[0], 0) for key in keys}


@pytest.mark.parametrize(("total", "asked"), [(50_000, 100), (1_000_000, 400)])
def test_dense_search_asks_the_store_for_the_beam_and_keeps_the_best_n(total, asked):
    store = _Store()
    beam = search_beam_for(total, StoreSettings())
    hits = dense_documents(store, _Catalog(), None, np.ones((1, 4), dtype=np.float32), 10, [set()], total=total,
                           beam=beam)  # fmt: skip
    assert store.asked == [asked]  # k=10 needs 2 * 10 + 10 = 30 chunks; the beam widens that (400 at 1M)
    assert len(hits[0]) == 10 and set(hits[0]) == {f"d{i}" for i in range(10)}
