"""Section "write": the dense store's write path (``VectorStore`` into embedded chroma) with precomputed vectors.

Old settings (HNSW M=32, ef_construction=200, sync_threshold=1000, ``upsert``) and the current
``StoreSettings`` defaults (written with ``add``, as ``Collection`` does for its content-addressed chunk
keys) side by side in one run, on real MiniLM embeddings (``benchmarks.real_vectors``). Vectors go in
calls of ``call_size`` ids, the number of chunk vectors ``Collection`` writes per batch
(``write_batch_size`` documents x ~1.67 chunks per document in the collection benchmark), each paged by
``CHROMA_PAGE`` inside ``VectorStore``. The figure is the store's alone: no embedding, no catalog.

Then recall@10 against exact search (numpy) and query latency of the new collection at several
ef_search values: chroma applies a changed ef_search when it next loads the index, so each value is
measured after ``modify`` + a fresh client (first query, which loads the index, not timed).

Where the time goes (perf on chromadb 1.5.9, old settings): ~70% the SSE inner-product kernel of hnswlib
and ~15% its neighbour/visited loop, i.e. HNSW construction. Each chroma write also persists the whole
HNSW index (data_level0.bin + id map pickle) once ``sync_threshold`` records have arrived since the last
persist, O(index size) per persist; until then its records stay in chroma's SQLite log, which every
write re-reads from the last persisted sequence id.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import latency_stats, ratio, timed_each

CALL_SIZE = 854  # chunk vectors per Collection batch: 512 documents x 166,780 / 100,000 chunks per document
OLD = {
    "hnsw_construction_ef": 200,
    "hnsw_max_neighbors": 32,
    "hnsw_search_ef": 600,
    "hnsw_sync_threshold": 1000,
}
EF_SEARCH = (20, 40, 60, 100, 200)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _settings_dict(settings: Any) -> dict[str, Any]:
    return {
        "M": settings.hnsw_max_neighbors,
        "ef_construction": settings.hnsw_construction_ef,
        "ef_search": settings.hnsw_search_ef,
        "sync_threshold": settings.hnsw_sync_threshold,
    }


def write(settings: Any, vectors: np.ndarray, directory: Path, method: str, call_size: int) -> dict[str, Any]:
    """Write ``vectors`` into a new store under ``directory`` in calls of ``call_size``; time it."""
    from diver.index.stores.chroma import ChromaStore, open_client

    store = ChromaStore(open_client(settings, directory), "bench-write", settings, create=True)
    ids = [f"k{i:08d}" for i in range(len(vectors))]
    write_fn = store.add if method == "add" else store.upsert
    load_before = _load()
    started = time.perf_counter()
    slowest = 0.0
    for start in range(0, len(ids), call_size):
        t = time.perf_counter()
        write_fn(ids[start : start + call_size], vectors[start : start + call_size])
        slowest = max(slowest, time.perf_counter() - t)
    seconds = time.perf_counter() - started
    count = store.count()
    if count != len(ids):
        raise RuntimeError(f"store holds {count} vectors after writing {len(ids)}")
    return {
        "method": method,
        "settings": _settings_dict(settings),
        "seconds": round(seconds, 2),
        "vectors_per_s": round(len(ids) / seconds, 1),
        "slowest_call_s": round(slowest, 3),
        "load_avg_before": load_before,
        "load_avg_after": _load(),
    }


def search(
    settings: Any, directory: Path, queries: np.ndarray, truth: np.ndarray, ef_values: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    """Recall@10 vs exact and latency per ef_search, each after the index is reloaded with that value."""
    from chromadb.api.client import SharedSystemClient

    from diver.index.stores.chroma import ChromaStore, open_client

    out: dict[str, dict[str, Any]] = {}
    for ef in ef_values:
        store = ChromaStore(open_client(settings, directory), "bench-write", settings, create=False)
        store._collection.modify(configuration={"hnsw": {"ef_search": int(ef)}})
        SharedSystemClient.clear_system_cache()  # the loaded index keeps its ef: load it again
        store = ChromaStore(open_client(settings, directory), "bench-write", settings, create=False)
        store._collection.query(query_embeddings=queries[:1], n_results=10, include=[])  # loads the index
        latencies, found = timed_each(
            lambda q, col=store._collection: col.query(query_embeddings=q[None], n_results=10, include=[])[
                "ids"
            ][0],
            list(queries),
        )
        recall = np.mean(
            [len({int(k[1:]) for k in f} & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]
        )
        out[str(ef)] = {"recall_at_10": round(float(recall), 4), **latency_stats(latencies)}
        SharedSystemClient.clear_system_cache()
    return out


def run(
    size: int,
    queries: int = 200,
    call_size: int = CALL_SIZE,
    ef_values: tuple[int, ...] = EF_SEARCH,
    old: bool = True,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Old vs new store settings at ``size`` real vectors. Keys: size, dim, call_size, queries, old, new,
    speedup, new_meets_5000_per_s, search (ef_search -> recall_at_10, p50_ms, ...), default_ef_search,
    recall_at_10 and p50_ms (at the default ef_search), old_search (the old settings at their ef_search)."""
    from benchmarks.real_vectors import corpus_vectors, query_vectors
    from diver.config import StoreSettings

    vectors = corpus_vectors(size)
    qvec = query_vectors()[:queries]
    truth = np.argpartition(-(qvec @ vectors.T), 10, axis=1)[:, :10]
    new_settings = StoreSettings()
    efs = tuple(sorted({*ef_values, new_settings.hnsw_search_ef}))
    out: dict[str, Any] = {
        "size": size,
        "dim": int(vectors.shape[1]),
        "call_size": call_size,
        "queries": len(qvec),
    }
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        new_dir = Path(tmp) / "new"
        out["new"] = write(new_settings, vectors, new_dir, "add", call_size)
        out["search"] = search(new_settings, new_dir, qvec, truth, efs)
    default = out["search"][str(new_settings.hnsw_search_ef)]
    out["default_ef_search"] = new_settings.hnsw_search_ef
    out["recall_at_10"], out["p50_ms"] = default["recall_at_10"], default["p50_ms"]
    out["new_meets_5000_per_s"] = out["new"]["vectors_per_s"] >= 5000
    if old:
        old_settings = StoreSettings(**OLD)
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            out["old"] = write(old_settings, vectors, Path(tmp) / "old", "upsert", call_size)
            out["old_search"] = search(
                old_settings, Path(tmp) / "old", qvec, truth, (old_settings.hnsw_search_ef,)
            )
        out["speedup"] = ratio(out["new"]["vectors_per_s"], out["old"]["vectors_per_s"])
    return out


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int)
    parser.add_argument("--no-old", action="store_true", help="skip the old settings (~1,500 vectors/s at 167k)")
    parser.add_argument("--call-size", type=int, default=CALL_SIZE)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.size, args.queries, args.call_size, old=not args.no_old), indent=1))
