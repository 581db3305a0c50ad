"""Section 2: chroma HNSW (our StoreSettings) vs exact search (numpy, torch) on clustered unit vectors.

Building chroma's HNSW (M=32, ef_construction=200) runs at a few hundred vectors/s on this shared 2-core
machine, so HNSW is built only up to ``hnsw_max`` vectors inside the time budget; larger sizes report
exact search measured and HNSW extrapolated from the sizes built (build ~ N log N, query ~ log N).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import PeakRSS, latency_stats, ratio, timed_each
from benchmarks.corpus import clustered_vectors, query_vectors


def exact(matrix: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    import torch

    numpy_lat, tops = timed_each(lambda q: np.argpartition(-(matrix @ q), 10)[:10], list(queries))
    tmatrix = torch.from_numpy(matrix)
    torch_lat, _ = timed_each(lambda q: torch.topk(tmatrix @ torch.from_numpy(q), 10).indices, list(queries))
    batch = torch.from_numpy(queries[:100])
    started = time.perf_counter()
    torch.topk(batch @ tmatrix.T, 10, dim=1)
    batch_ms = (time.perf_counter() - started) * 1000.0 / len(batch)
    return {
        "numpy": latency_stats(numpy_lat),
        "torch": latency_stats(torch_lat),
        "torch_batch100_ms_per_query": round(batch_ms, 3),
        "tops": [set(t.tolist()) for t in tops],
    }


def hnsw(matrix: np.ndarray, queries: np.ndarray, truth: list[set[int]], workdir: Path | None) -> dict:
    from diver.config import StoreSettings
    from diver.index.stores.chroma import ChromaStore, open_client

    settings = StoreSettings()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        store = ChromaStore(open_client(settings, Path(tmp)), "bench-dense", settings, create=True)
        ids = [str(i) for i in range(len(matrix))]
        with PeakRSS() as rss:
            started = time.perf_counter()
            store.upsert(ids, matrix)
            build_s = time.perf_counter() - started
        store.query(queries[:1], 10)
        latencies, found = timed_each(lambda q: store.query(q[None], 10)[0], list(queries))
    recall = np.mean([len({int(k) for k, _ in f} & t) / 10 for f, t in zip(found, truth, strict=True)])
    return {
        "build_s": round(build_s, 3),  # a small build takes well under 0.1 s
        "vectors_per_s": round(len(matrix) / build_s, 1),
        "peak_rss_delta_mb": round(rss.delta_mb, 1),
        **latency_stats(latencies),
        "recall_at_10": round(float(recall), 4),
        "settings": {
            "space": settings.hnsw_space,
            "M": settings.hnsw_max_neighbors,
            "ef_construction": settings.hnsw_construction_ef,
            "ef_search": settings.hnsw_search_ef,
        },
    }


def run(size: int, queries: int, hnsw_max: int, workdir: Path | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    matrix = clustered_vectors(size)
    qvec = query_vectors(queries)
    out: dict[str, Any] = {"size": size, "dim": matrix.shape[1], "queries": queries}
    out["generate_s"] = round(time.perf_counter() - started, 1)
    ex = exact(matrix, qvec)
    truth = ex.pop("tops")
    out["exact"] = ex
    if size <= hnsw_max:
        out["hnsw"] = hnsw(matrix, qvec, truth, workdir)
        out["speedup_p50_hnsw_vs_numpy"] = ratio(ex["numpy"]["p50_ms"], out["hnsw"]["p50_ms"])
        out["speedup_p50_hnsw_vs_torch"] = ratio(ex["torch"]["p50_ms"], out["hnsw"]["p50_ms"])
    return out


def extrapolate_hnsw(measured: dict[str, Any], measured_size: int, target: int) -> dict[str, Any]:
    """HNSW at ``target`` from a build at ``measured_size``: build ~ N log N, query latency ~ log N."""
    growth = math.log(target) / math.log(measured_size)
    return {
        "extrapolated_from": measured_size,
        "build_s": round(measured["build_s"] * target / measured_size * growth, 0),
        "p50_ms": round(measured["p50_ms"] * growth, 3),
        "p95_ms": round(measured["p95_ms"] * growth, 3),
    }
