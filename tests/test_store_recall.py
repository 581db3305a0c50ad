"""chromadb HNSW, with our settings, reaches recall@10 >= 0.95 against exact search on 20k vectors."""

import numpy as np
import pytest

from diver.config import StoreSettings
from diver.store import VectorStore, open_client


@pytest.mark.slow
def test_hnsw_recall_at_10_on_20k_random_vectors(tmp_path):
    rng = np.random.default_rng(7)
    n, dims, n_queries = 20_000, 384, 200
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((n_queries, dims)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    settings = StoreSettings()
    store = VectorStore(open_client(settings, tmp_path), "recall", settings, create=True)
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
