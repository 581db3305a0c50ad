"""Section "dense-real": exact vs HNSW dense search on real MiniLM vectors, through the production query path.

Vectors: ``benchmarks.real_vectors`` (MiniLM embeddings of ~25k real text chunks, perturbed mixtures of
them above that; queries: the 800 TheoremQA questions, not in the corpus). One collection is built with
the production storage (``Catalog.commit`` + ``VectorStore.upsert``, the chunk rows and chroma HNSW of our
``StoreSettings``; embedding skipped, the vectors are given): 100,000 documents of 1 or 2 chunks, 166,780
chunks, like the synthetic 100k-document collection of the collection section. Chunk texts are the real
chunk texts (cycled above ~25k) so BM25 and hybrid search run too.

Every size is measured during that one build, when the HNSW index holds exactly the first ``size``
chunks (an HNSW index grown to N *is* an HNSW index of N vectors), through ``Collection.search_many``
(mode dense, precomputed query vectors: ``timings_ms['dense']`` is the dense stage alone):

* exact: ``dense_search='exact'`` (diver/index/dense/exact.py: in-memory matrix, MAX roll-up);
* hnsw at several ef_search: chroma's loaded index keeps the beam it was loaded with (the build's smallest
  ef); larger beams are had by asking for ``ef`` results (hnswlib searches with max(ef, k)), the way
  ``VectorStore`` widens the beam of an index loaded with a smaller one. That costs a little per extra
  result, so these figures are upper bounds; the chosen ef is then measured as deployed (stored in the
  collection configuration, index loaded by a fresh process) at the largest size, together with hybrid
  search with the real MiniLM encoding each query (``deployed``).

recall@10 = overlap of the top-10 documents (and, ``chunk_recall_at_10``, of ``VectorStore.query``'s top
10 chunks) with exact search. The build (slow: chroma inserts a few hundred to ~1,000 vectors/s here) and
the per-size figures are cached in ``real_vectors.cache_dir()``; a rerun re-measures only ``deployed``.

Returned dict keys: ``sizes`` (list of chunk counts), ``per_size`` {str(chunks): {documents, exact:
{p50_ms, p95_ms, ...}, exact_numpy_matvec: {...}, hnsw: {str(ef): {p50_ms, p95_ms, recall_at_10,
chunk_recall_at_10, store_queries_per_search}}, hnsw_pool100: {...}, exact_pool100: {...}}}, ``efs``,
``chosen_ef``, ``crossover_chunks`` (smallest measured size where HNSW at the chosen ef has a lower p50
than exact; interpolated ``crossover_estimate``), ``deployed`` {chunks, documents, ef, hnsw: {...},
hnsw_pool100: {...}, exact: {...}, hybrid_real_minilm: {total: {...}, parts_p50_ms: {...}}},
``build`` {seconds, vectors_per_s, M, ef_construction}, ``exact_1m_numpy`` (when asked), ``settings``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import latency_stats

CHUNKS = 166_780
DOCUMENTS = 100_000
SIZES = (5_000, 10_000, 20_000, 50_000, 100_000, CHUNKS)
EFS = (20, 40, 60, 100, 200)
QUERIES = 200
TARGET_RECALL = 0.95


class LookupEmbedder:
    """MiniLM's id and size; query vectors looked up by text (precomputed real MiniLM query embeddings)."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        from diver.config import DEFAULT_EMBEDDING_MODEL

        self.id = DEFAULT_EMBEDDING_MODEL
        self.dimensions = int(vectors.shape[1])
        self.max_seq_length = 256
        from diver.text.queries import prepare_queries

        self._vectors = dict(zip(texts, vectors, strict=True))
        self._vectors.update(zip(prepare_queries(texts, 10**9), vectors, strict=True))  # as search cleans them
        self.spanner = None

    def chunk_token_budget(self) -> int:
        return 254

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])

    def embed_documents(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - the build gives vectors
        raise RuntimeError("the benchmark collection is written with given vectors")


def _doc_sizes(documents: int, chunks: int, seed: int = 5) -> np.ndarray:
    sizes = np.ones(documents, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sizes[rng.choice(documents, chunks - documents, replace=False)] = 2
    return sizes


def _settings(data_dir: Path, ef: int, **store: Any) -> Any:
    from diver.config import load_settings

    return load_settings(
        data_dir=data_dir,
        embedding={"cache": False},
        llm={"cache": False},
        store={"hnsw_search_ef": ef, **store},
        engine={"mode": "local"},
    )


def _cache_key(sizes: tuple[int, ...], efs: tuple[int, ...], queries: int) -> str:
    from diver.config import StoreSettings

    s = StoreSettings()
    return f"M{s.hnsw_max_neighbors}-efc{s.hnsw_construction_ef}-ef{min(efs)}-{max(sizes)}-q{queries}"


def _query_texts(n: int) -> tuple[list[str], np.ndarray]:
    from benchmarks.real_vectors import query_texts, query_vectors

    texts, vectors = list(query_texts())[:n], query_vectors()[:n]
    return texts, vectors


def _dense(col: Any, texts: list[str], mode: str, k: int, beam: int | None = None) -> tuple[dict, list[list[str]]]:
    """p50/p95 of the dense stage through Collection.search_many, the top-k ids, store queries per search."""
    col.engine.settings.store.dense_search = mode
    if beam is not None:
        col.store._beam = beam  # the benchmark's beam: ask for at least this many results
    calls = {"n": 0}
    query = col.store.query

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return query(*args, **kwargs)

    col.store.query = counted
    try:
        col.search_many(texts[:1], k=k, mode="dense")  # warm (the exact matrix is synced here)
        calls["n"] = 0
        lat, ids, paths = [], [], set()
        for text in texts:
            [res] = col.search_many([text], k=k, mode="dense")
            lat.append(res.timings_ms["dense"])
            ids.append([h.id for h in res.hits])
            paths.add(res.dense_path)
    finally:
        del col.store.query
    stats = latency_stats(lat)
    stats["path"] = ",".join(sorted(p for p in paths if p))
    if mode == "hnsw":
        stats["store_queries_per_search"] = round(calls["n"] / len(texts), 3)
    return stats, ids


def _recall(found: list[list[str]], truth: list[list[str]], k: int = 10) -> float:
    return round(float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)])), 4)


def _chunk_recall(col: Any, qvec: np.ndarray, matrix: Any) -> float:
    sims = qvec @ matrix.matrix.T
    out = []
    for i, row in enumerate(col.store.query(qvec, 10)):
        truth = {matrix.keys[j] for j in np.argpartition(-sims[i], 10)[:10]}
        out.append(len(truth & {key for key, _ in row}) / 10)
    return round(float(np.mean(out)), 4)


def measure(col: Any, texts: list[str], qvec: np.ndarray, efs: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"chunks": col.info().chunks, "documents": col.info().documents}
    exact, truth = _dense(col, texts, "exact", 10)
    out["exact"] = exact
    exact100, truth100 = _dense(col, texts, "exact", 100)
    out["exact_pool100"] = exact100
    exact_matrix = col.dense.exact.current
    matrix = exact_matrix.matrix
    lat = []
    for q in qvec:
        t = time.perf_counter()
        np.argpartition(-(matrix @ q), 10)[:10]
        lat.append((time.perf_counter() - t) * 1000.0)
    out["exact_numpy_matvec"] = latency_stats(lat)
    out["exact_matrix_mb"] = round(matrix.nbytes / 2**20, 1)
    out["hnsw"] = {}
    out["hnsw_pool100"] = {}
    for ef in efs:
        stats, found = _dense(col, texts, "hnsw", 10, beam=ef)
        stats["recall_at_10"] = _recall(found, truth)
        stats["chunk_recall_at_10"] = _chunk_recall(col, qvec, exact_matrix)
        out["hnsw"][str(ef)] = stats
        stats100, found100 = _dense(col, texts, "hnsw", 100, beam=ef)
        stats100["recall_at_100"] = _recall(found100, truth100, 100)
        out["hnsw_pool100"][str(ef)] = stats100
    col.store._beam = None
    col.dense.exact.drop()
    return out


def build_and_measure(workdir: Path, efs: tuple[int, ...], queries: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Build the collection (with the smallest ef stored), measuring each size on the way."""
    from benchmarks.real_vectors import corpus_texts, corpus_vectors
    from diver.index.catalog import PreparedDocument, chunk_key
    from diver.index.engine import Engine
    from diver.text.documents import Chunk, Document, content_hash

    texts, qvec = _query_texts(queries)
    chunks = max(sizes)
    documents = int(round(chunks * DOCUMENTS / CHUNKS))
    vectors = corpus_vectors(chunks)
    chunk_texts = corpus_texts()
    sizes_per_doc = _doc_sizes(documents, chunks)
    settings = _settings(workdir, min(efs))
    per_size: dict[str, Any] = {}
    build_s = 0.0
    with Engine(settings, embedder=LookupEmbedder(texts, qvec)) as engine:
        col = engine.collection("dense-real", create=True)
        row = doc = 0
        pending = sorted(sizes)
        batch_docs = 3000
        while doc < documents:
            prepared, keys, rows = [], [], []
            for d in range(doc, min(documents, doc + batch_docs)):
                parts = [chunk_texts[(row + c) % len(chunk_texts)] for c in range(int(sizes_per_doc[d]))]
                text = "\n".join(parts)
                document = Document(id=f"doc{d:06d}", text=text, metadata={})
                digest = content_hash(document)
                doc_chunks, start = [], 0
                for c, part in enumerate(parts):
                    doc_chunks.append(Chunk(document.id, c, part, start, start + len(part)))
                    start += len(part) + 1
                prepared.append(PreparedDocument(document, digest, doc_chunks))
                keys.extend(chunk_key(digest, c) for c in range(len(parts)))
                rows.extend(range(row, row + len(parts)))
                row += len(parts)
            doc = min(documents, doc + batch_docs)
            t = time.perf_counter()
            col.store.upsert(keys, vectors[rows])
            col.catalog.commit(prepared)
            build_s += time.perf_counter() - t
            if pending and (row >= pending[0] or doc == documents):
                print(f"[dense-real] {row:,} chunks built in {build_s:.0f}s; measuring", file=sys.stderr, flush=True)
                per_size[str(row)] = measure(col, texts, qvec, efs)
                col.engine.settings.store.dense_search = "auto"
                pending = [s for s in pending if s > row]
    return {
        "per_size": per_size,
        "build": {"seconds": round(build_s, 1), "vectors_per_s": round(chunks / build_s, 1),
                  "M": settings.store.hnsw_max_neighbors, "ef_construction": settings.store.hnsw_construction_ef,
                  "stored_ef_search": min(efs)},  # fmt: skip
    }


def choose_ef(per_size: dict[str, Any], efs: tuple[int, ...]) -> int:
    """The smallest ef whose doc recall@10 is >= TARGET_RECALL at every measured size (else the largest)."""
    for ef in sorted(efs):
        if all(m["hnsw"][str(ef)]["recall_at_10"] >= TARGET_RECALL for m in per_size.values()):
            return ef
    return max(efs)


def crossover(per_size: dict[str, Any], ef: int) -> tuple[int | None, int | None]:
    """(smallest measured size where HNSW at ``ef`` beats exact on p50, log-linear interpolation)."""
    points = sorted((int(s), m["exact"]["p50_ms"], m["hnsw"][str(ef)]["p50_ms"]) for s, m in per_size.items())
    previous = None
    for size, exact, hnsw in points:
        if hnsw < exact:
            if previous is None:
                return size, size
            s0, e0, h0 = previous
            d0, d1 = e0 - h0, exact - hnsw  # d0 >= 0 > ... crossing between s0 and size
            f = d0 / (d0 - d1) if d0 != d1 else 0.5
            return size, int(round(np.exp(np.log(s0) + f * (np.log(size) - np.log(s0)))))
        previous = (size, exact, hnsw)
    return None, None


def deployed(data_dir: Path, ef: int, queries: int, real_queries: int) -> dict[str, Any]:
    """In a fresh process (the index loads with the stored ef): dense at the full size and hybrid search
    with the real MiniLM encoding each query."""
    import torch

    from benchmarks.common import timed_each
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import SentenceTransformerEmbedder
    from diver.index.engine import Engine

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    texts, qvec = _query_texts(queries)
    with Engine(_settings(data_dir, ef), embedder=LookupEmbedder(texts, qvec)) as engine:
        col = engine.collection("dense-real")
        out: dict[str, Any] = {"chunks": col.info().chunks, "documents": col.info().documents, "ef": ef}
        assert col.store.search_beam() == 0, "the stored ef_search should equal the setting"
        exact, truth = _dense(col, texts, "exact", 10)
        exact100, truth100 = _dense(col, texts, "exact", 100)
        out["exact"], out["exact_pool100"] = exact, exact100
        exact_matrix = col.dense.exact.current
        hnsw, found = _dense(col, texts, "hnsw", 10)
        hnsw["recall_at_10"] = _recall(found, truth)
        hnsw["chunk_recall_at_10"] = _chunk_recall(col, qvec, exact_matrix)
        out["hnsw"] = hnsw
        pool, found100 = _dense(col, texts, "hnsw", 100)
        pool["recall_at_100"] = _recall(found100, truth100, 100)
        out["hnsw_pool100"] = pool
        col.dense.exact.drop()
        col.engine.settings.store.dense_search = "auto"
        real = SentenceTransformerEmbedder(EmbeddingSettings(cache=False, device="cpu"))
        engine._embedder = real  # same id and size: the collection accepts it
        t = time.perf_counter()
        col.warm()  # BM25 over the chunk texts (built once, cached in the data dir)
        out["bm25_warm_s"] = round(time.perf_counter() - t, 1)
        col.search(texts[0], k=10)
        totals, parts, paths = [], {}, set()
        for text in texts[:real_queries]:
            t = time.perf_counter()
            res = col.search(text, k=10, mode="hybrid")
            totals.append((time.perf_counter() - t) * 1000.0)
            paths.add(res.dense_path)
            for name, value in res.timings_ms.items():
                parts.setdefault(name, []).append(value)
        embed_lat, _ = timed_each(lambda q: real.embed_queries([q]), texts[:real_queries])
        out["hybrid_real_minilm"] = {
            "total": latency_stats(totals),
            "parts_p50_ms": {k: round(float(np.median(v)), 3) for k, v in parts.items()},
            "dense_path": ",".join(sorted(p for p in paths if p)),
            "minilm_query_embedding": latency_stats(embed_lat),
        }
    return out


# Over 60 lines: the sizes x ef_search sweep with its per-size setup and teardown.
def run(
    sizes: tuple[int, ...] = SIZES,
    efs: tuple[int, ...] = EFS,
    queries: int = QUERIES,
    real_queries: int = 50,
    exact_1m: bool = False,
    rebuild: bool = False,
) -> dict[str, Any]:
    from benchmarks.real_vectors import cache_dir
    from diver.config import StoreSettings

    key = _cache_key(sizes, efs, queries)
    data_dir = cache_dir() / f"dense-real-{key}"
    measured = data_dir / "measured.json"
    if rebuild or not measured.exists():
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        built = build_and_measure(data_dir, efs, queries, sizes)
        measured.write_text(json.dumps(built, indent=1), encoding="utf-8")
    built = json.loads(measured.read_text(encoding="utf-8"))
    per_size = built["per_size"]
    ef = choose_ef(per_size, efs)
    first, estimate = crossover(per_size, ef)
    from diver.index.engine import Engine

    with Engine(_settings(data_dir, ef)) as engine:  # store the chosen ef (applies to the next load)
        engine.collection("dense-real").store.search_beam()
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.dense_real_bench", "--deployed", str(data_dir), str(ef), str(queries),
         str(real_queries)],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    if child.returncode != 0:
        deployed_out: dict[str, Any] = {"error": child.stderr[-2000:]}
    else:
        deployed_out = json.loads(child.stdout.strip().splitlines()[-1])
    out: dict[str, Any] = {
        "sizes": sorted(int(s) for s in per_size),
        "per_size": per_size,
        "efs": list(efs),
        "chosen_ef": ef,
        "crossover_chunks": first,
        "crossover_estimate": estimate,
        "deployed": deployed_out,
        "build": built["build"],
        "settings": StoreSettings().model_dump(exclude={"chroma_url"}),
        "queries": queries,
    }
    if exact_1m:
        from benchmarks.real_vectors import corpus_vectors, query_vectors

        matrix = corpus_vectors(1_000_000)
        lat = []
        for q in query_vectors()[:30]:
            t = time.perf_counter()
            np.argpartition(-(matrix @ q), 10)[:10]
            lat.append((time.perf_counter() - t) * 1000.0)
        out["exact_1m_numpy"] = latency_stats(lat)
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--deployed":
        print(json.dumps(deployed(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
    else:
        print(json.dumps(run(), indent=1))
