"""Issue 24 (fast on a laptop CPU): the CPU embedding backends side by side in one process.

``python -m benchmarks.run --sections cpu-embed`` (alone: ~5-10 minutes on the 2-core machine). Measured here:

- documents of both offline sets (TheoremQA theorems, 354; TheoremQA problems, 800; each embedded once,
  truncated at 256 tokens like a chunk) through plain ``SentenceTransformer.encode`` (torch, batch 32) and
  each backend: chunks/s, min cosine to torch, and dense-only nDCG@10 on both sets (exact cosine ranking);
- BRIGHT-length query embedding p50 (real BRIGHT queries of all 12 domains, one at a time, cache off), torch
  vs the backends; a cached query (no model call); GFLOP/s of the forward pass against torch matmul of
  the same GEMM shapes (and of a 1024^3 GEMM) on this CPU;
- end-to-end indexing: synthetic documents through ``Collection.upsert`` with the picked backend, the time
  inside the embedder measured in the same call (so docs/s vs the embedding-only rate of the same chunks).

Figures this section does not re-measure (10k/100k indexing, hybrid at 100k docs, chunking share, recall
at 167k/1M) are composed in the report from the full run's JSON and marked as such.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import latency_stats as percentiles

QUERY_COUNT = 48
INDEX_DOCS = 240


def _bright_queries(n: int) -> list[str]:
    from benchmarks.real_vectors import _data_dir

    topics = sorted((_data_dir() / "bright" / "topics").glob("*.jsonl.gz"))
    rows: list[str] = []
    for path in topics:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows += [json.loads(line)["query"] for line in handle][:8]
    step = max(1, len(rows) // n)
    return rows[::step][:n]


def _offline_sets() -> list[Any]:
    from diver.datasets.theoremqa import build_questions, build_theorems

    return [build_theorems(), build_questions()]


def _ndcg10(bench: Any, doc_ids: list[str], docs: np.ndarray, queries: np.ndarray) -> float:
    from diver.datasets.metrics import ndcg_at_k

    scores = queries @ docs.T
    values = []
    for row, qid in enumerate(bench.queries):
        excluded = bench.excluded.get(qid, set())
        order = [doc_ids[i] for i in np.argsort(-scores[row]) if doc_ids[i] not in excluded][:10]
        values.append(ndcg_at_k(order, bench.qrels.get(qid, {}), 10))
    return float(np.mean(values))


def _gemm_shapes(tokens: int, hidden: int = 384, ffn: int = 1536, layers: int = 6) -> list[tuple[int, int, int]]:
    per_layer = [(tokens, hidden, hidden)] * 4 + [(tokens, hidden, ffn), (tokens, ffn, hidden)]
    return per_layer * layers


def forward_flops(tokens: int, hidden: int = 384, ffn: int = 1536, layers: int = 6) -> float:
    """MiniLM-L6 forward FLOPs for one sequence: the linear layers plus attention scores and mixing."""
    linear = sum(2.0 * m * k * n for m, k, n in _gemm_shapes(tokens, hidden, ffn, layers))
    attention = layers * 2 * (2.0 * tokens * tokens * hidden)
    return linear + attention


def matmul_peak(tokens: int) -> dict[str, float]:
    """GFLOP/s of torch fp32 matmul over the forward pass's GEMM shapes, and of one 1024^3 GEMM."""
    import torch

    shapes = _gemm_shapes(tokens)
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    best = float("inf")
    for _ in range(20):
        started = time.perf_counter()
        for a, b in mats:
            torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    big = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        torch.matmul(a, b)
        big = min(big, time.perf_counter() - started)
    return {"same_shapes_gflops": flops / best / 1e9, "gemm_1024_gflops": 2 * 1024**3 / big / 1e9}


def _time_queries(encode: Any, queries: list[str]) -> dict[str, float]:
    encode([queries[0]])  # warm-up
    times = []
    for query in queries:
        started = time.perf_counter()
        encode([query])
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


def _embedders(cache: Path) -> dict[str, Any]:
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import SentenceTransformerEmbedder

    variants = {
        "torch": {"backend": "torch"},
        "auto": {"backend": "auto"},
        "openvino-bf16": {"backend": "openvino", "backend_precision": "bf16"},
        "openvino-f32": {"backend": "openvino", "backend_precision": "f32"},
        "onnx-f32": {"backend": "onnx"},
        "onnx-int8": {"backend": "onnx", "quantize": "int8-dynamic"},
    }
    from diver.errors import ConfigError

    out = {}
    for name, kw in variants.items():
        try:
            out[name] = SentenceTransformerEmbedder(EmbeddingSettings(cache=False, **kw), cache_dir=cache)
        except (ConfigError, RuntimeError) as exc:  # e.g. bf16 on a CPU without it: reported, not fatal
            print(f"  {name}: not available here: {exc}", flush=True)
    return out


def _throughput_and_quality(embedders: dict[str, Any]) -> dict[str, Any]:
    sets = _offline_sets()
    texts: list[str] = []
    spans = []
    for bench in sets:
        docs = list(bench.corpus)
        spans.append((bench, [d.id for d in docs], len(texts), len(texts) + len(docs)))
        texts += [d.text for d in docs]
    out: dict[str, Any] = {"documents": len(texts), "sets": [b.name for b in sets], "backends": {}}
    reference: np.ndarray | None = None
    for name, embedder in embedders.items():
        encode = embedder.encode_torch if name == "torch" else embedder._encode
        started = time.perf_counter()
        vectors = encode(texts)
        seconds = time.perf_counter() - started
        if reference is None:
            reference = vectors
        row: dict[str, Any] = {
            "chunks_per_s": round(len(texts) / seconds, 2),
            "seconds": round(seconds, 2),
            "picked": embedder.backend_choice.summary(),
            "min_cosine_vs_torch": round(float((vectors * reference).sum(axis=1).min()), 6),
            "mean_cosine_vs_torch": round(float((vectors * reference).sum(axis=1).mean()), 6),
        }
        for bench, ids, lo, hi in spans:
            queries = encode(list(bench.queries.values()))
            row[f"ndcg10:{bench.name}"] = round(100 * _ndcg10(bench, ids, vectors[lo:hi], queries), 2)
        out["backends"][name] = row
        print(f"  {name}: {row}", flush=True)
    return out


def _indexing(embedder: Any) -> dict[str, Any]:
    """Synthetic documents through Collection.upsert with a real embedder; the embedder's own time inside."""
    from benchmarks.corpus import SyntheticCorpus
    from diver.config import load_settings
    from diver.engine import Engine
    from diver.text.documents import Document

    texts = SyntheticCorpus(INDEX_DOCS, batch=INDEX_DOCS).texts(0)
    inner = embedder.embed_documents
    spent = {"s": 0.0, "chunks": 0}

    def timed(batch: Any) -> np.ndarray:
        started = time.perf_counter()
        vectors = inner(batch)
        spent["s"] += time.perf_counter() - started
        spent["chunks"] += len(batch)
        return vectors

    embedder.embed_documents = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(data_dir=Path(tmp))
            with Engine(settings, embedder=embedder) as engine:
                collection = engine.collection("bench", create=True)
                started = time.perf_counter()
                collection.upsert([Document(id=f"d{i}", text=t) for i, t in enumerate(texts)])
                seconds = time.perf_counter() - started
    finally:
        del embedder.embed_documents
    return {
        "documents": len(texts),
        "chunks": spent["chunks"],
        "seconds": round(seconds, 2),
        "embedding_s": round(spent["s"], 2),
        "docs_per_s": round(len(texts) / seconds, 2),
        "embedding_only_docs_per_s": round(len(texts) / spent["s"], 2),
        "ratio": round(spent["s"] / seconds, 4),
        "backend": embedder.backend_choice.summary(),
    }


def run(queries: int = QUERY_COUNT) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        embedders = _embedders(Path(tmp))
        out["auto_choice"] = {
            "summary": embedders["auto"].backend_choice.summary(),
            "trials": embedders["auto"].backend_choice.trials,
        }
        texts = _bright_queries(queries)
        words = sorted(len(q.split()) for q in texts)
        tokens = [len(embedders["torch"].model.tokenizer(q, truncation=True, max_length=256)["input_ids"]) for q in texts]
        out["queries"] = {"n": len(texts), "median_words": words[len(words) // 2], "median_tokens": int(np.median(tokens))}
        out["query_p50"] = {}
        for name, embedder in embedders.items():
            encode = embedder.encode_torch if name == "torch" else embedder._encode
            out["query_p50"][name] = _time_queries(encode, texts)
        flops = float(np.median([forward_flops(t) for t in tokens]))
        peak = matmul_peak(int(np.median(tokens)))
        out["gflops"] = {
            name: round(flops / (row["p50_ms"] / 1000) / 1e9, 2) for name, row in out["query_p50"].items()
        } | {f"peak_{k}": round(v, 2) for k, v in peak.items()} | {"forward_gflop": round(flops / 1e9, 3)}
        out["cached_query_ms"] = _cached_query_ms(Path(tmp), texts)
        out["embedding"] = _throughput_and_quality(embedders)
        out["indexing"] = _indexing(embedders["auto"])
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _cached_query_ms(cache: Path, texts: list[str]) -> dict[str, float]:
    """Embedding-cache hits: the second time a query is embedded no model runs."""
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbeddingSettings(), cache_dir=cache)
    embedder.embed_queries(texts[:10])
    embedder._fast = embedder.encode_torch = None  # a model call now would fail: hits only
    times = []
    for query in texts[:10]:
        started = time.perf_counter()
        embedder.embed_queries([query])
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
