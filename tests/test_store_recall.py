"""chromadb HNSW, with our settings, reaches recall@10 >= 0.95 against exact search on 20k vectors.

The vectors are clustered (as benchmarks.corpus.clustered_vectors: 1000 centres, unit noise), not uniform on the
sphere: uniformly random 384-d vectors have no neighbourhood structure and are HNSW's worst case, unlike
embeddings (the defaults M=16, ef_construction=128, ef_search=100 give 0.35 there; M=32/200/600 were chosen
on them). Recall on real MiniLM embeddings at 167k chunks is measured by benchmarks/write_bench.py."""

import numpy as np
import pytest

from diver.config import StoreSettings
from diver.index.stores.chroma import ChromaStore, open_client


def _clustered(count: int, dims: int = 384, clusters: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((clusters, dims)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = centres[rng.integers(0, clusters, count)] + rng.standard_normal((count, dims)).astype(
        np.float32
    ) / np.sqrt(dims)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.slow
def test_hnsw_recall_at_10_on_20k_clustered_vectors(tmp_path):
    n, n_queries = 20_000, 200
    vectors, queries = _clustered(n + n_queries)[:n], _clustered(n + n_queries)[n:]
    settings = StoreSettings()
    store = ChromaStore(open_client(settings, tmp_path), "recall", settings, create=True)
    ids = [f"v{i}" for i in range(n)]
    store.upsert(ids, vectors)
    assert store.count() == n
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    found = store.query(queries, 10)
    recall = np.mean(
        [len({ids[j] for j in exact[q]} & {key for key, _ in found[q]}) / 10 for q in range(n_queries)]
    )
    assert recall >= 0.95, f"recall@10 = {recall:.3f}"
    # similarities are cosine similarities of the true neighbours
    best = found[0][0]
    assert best[1] == pytest.approx(float(queries[0] @ vectors[int(best[0][1:])]), abs=1e-4)
