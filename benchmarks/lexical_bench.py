"""Section 1: our BM25 vs the BRIGHT reference (gensim LuceneBM25Model, k1=0.9, b=0.4) vs rank_bm25.

All three tokenize with the same bm25s pipeline (BRIGHT uses pyserini's analyzer, not installed here), so
top-10 agreement measures scoring, not tokenization. Each side builds and queries in its own forked child
of the process holding the corpus, so peak memory is that side's alone; the sides run back to back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import PeakRSS, latency_stats, ratio, run_forked, timed_each, top10_overlap
from diver.config import BM25Settings

SETTINGS = BM25Settings(query_side=True)  # the reference's scoring (query-side saturation)


def _batches(texts: Sequence[str], size: int = 10_000):
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def ours(texts: Sequence[str], queries: Sequence[str]) -> dict[str, Any]:
    from diver.index.lexical.bm25 import LexicalIndex, top_k, warm_kernels

    warm_kernels()  # start-up, not the first query
    with PeakRSS() as rss:
        started = time.perf_counter()
        index = LexicalIndex.build_streaming(_batches(texts), SETTINGS)
        build_s = time.perf_counter() - started
    index.score(queries[0])
    latencies, tops = timed_each(lambda q: top_k(index.score(q), 10).tolist(), queries)
    lat1000, _ = timed_each(lambda q: top_k(index.score(q), 1000), queries)
    return {
        "index_s": round(build_s, 2),
        "peak_rss_delta_mb": round(rss.delta_mb, 1),
        "index_bytes_mb": round(index.nbytes / 2**20, 1),
        "top10": latency_stats(latencies),
        "top1000": latency_stats(lat1000),
        "qps_top10": round(1000.0 / np.mean(latencies), 1),
        "qps_top1000": round(1000.0 / np.mean(lat1000), 1),
        "tops": tops,
    }


def gensim_reference(texts: Sequence[str], queries: Sequence[str], bright_queries: int) -> dict[str, Any]:
    from gensim.corpora import Dictionary
    from gensim.models import LuceneBM25Model
    from gensim.similarities import SparseMatrixSimilarity

    from diver.index.lexical.bm25 import BM25Tokenizer

    tokenizer = BM25Tokenizer(SETTINGS)
    with PeakRSS() as rss:
        started = time.perf_counter()
        tokens = [row for batch in _batches(texts) for row in tokenizer.tokenize(batch)]
        dictionary = Dictionary(tokens)
        model = LuceneBM25Model(dictionary=dictionary, k1=0.9, b=0.4)
        index = SparseMatrixSimilarity(
            model[[dictionary.doc2bow(t) for t in tokens]],
            num_docs=len(tokens),
            num_terms=len(dictionary),
            normalize_queries=False,
            normalize_documents=False,
        )
        del tokens
        build_s = time.perf_counter() - started
    doc_ids = [f"doc-{i}" for i in range(len(texts))]

    def scores(query: str) -> np.ndarray:
        return index[model[dictionary.doc2bow(tokenizer.tokenize([query])[0])]]

    def bright_top1000(query: str) -> list[tuple[str, float]]:  # BRIGHT's retrievers.py, as written there
        all_scores = dict(zip(doc_ids, scores(query).tolist(), strict=True))
        return sorted(all_scores.items(), key=lambda x: x[1], reverse=True)[:1000]

    def top10(query: str) -> list[int]:
        s = scores(query)
        part = np.argpartition(-s, 10)[:10]
        return part[np.argsort(-s[part], kind="stable")].tolist()

    core_lat, _ = timed_each(scores, queries)
    lat10, tops = timed_each(top10, queries)
    bright_lat, _ = timed_each(bright_top1000, queries[:bright_queries])
    return {
        "index_s": round(build_s, 2),
        "peak_rss_delta_mb": round(rss.delta_mb, 1),
        "scores_only": latency_stats(core_lat),
        "top10_argpartition": latency_stats(lat10),
        "bright_top1000_dict_sort": latency_stats(bright_lat),
        "qps_scores_only": round(1000.0 / np.mean(core_lat), 1),
        "qps_top10_argpartition": round(1000.0 / np.mean(lat10), 1),
        "qps_bright_top1000": round(1000.0 / np.mean(bright_lat), 1),
        "tops": tops,
    }


def rank_bm25_side(texts: Sequence[str], queries: Sequence[str]) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    from diver.index.lexical.bm25 import BM25Tokenizer

    tokenizer = BM25Tokenizer(SETTINGS)
    with PeakRSS() as rss:
        started = time.perf_counter()
        bm25 = BM25Okapi(
            [row for batch in _batches(texts) for row in tokenizer.tokenize(batch)], k1=0.9, b=0.4
        )
        build_s = time.perf_counter() - started

    def top10(query: str) -> list[int]:
        s = bm25.get_scores(tokenizer.tokenize([query])[0])
        part = np.argpartition(-s, 10)[:10]
        return part[np.argsort(-s[part], kind="stable")].tolist()

    latencies, tops = timed_each(top10, queries)
    return {
        "index_s": round(build_s, 2),
        "peak_rss_delta_mb": round(rss.delta_mb, 1),
        "top10": latency_stats(latencies),
        "qps_top10": round(1000.0 / np.mean(latencies), 2),
        "queries": len(queries),
        "tops": tops,
    }


def compare(
    texts: Sequence[str], queries: Sequence[str], rank_bm25_queries: int, bright_queries: int
) -> dict:
    """All three sides back to back on the same texts and queries; ratios against the reference."""
    mine = run_forked(ours, texts, queries)
    reference = run_forked(gensim_reference, texts, queries, bright_queries)
    rank = run_forked(rank_bm25_side, texts, queries[:rank_bm25_queries]) if rank_bm25_queries else None
    result: dict[str, Any] = {
        "documents": len(texts),
        "queries": len(queries),
        "ours": {k: v for k, v in mine.items() if k != "tops"},
        "gensim_reference": {k: v for k, v in reference.items() if k != "tops"},
        "top10_overlap_ours_vs_reference": top10_overlap(mine["tops"], reference["tops"]),
        "top10_identical_ours_vs_reference": round(
            float(np.mean([a == b for a, b in zip(mine["tops"], reference["tops"], strict=True)])), 4
        ),
        "qps_ratio_vs_reference_scores_only": ratio(mine["qps_top10"], reference["qps_scores_only"]),
        "qps_ratio_vs_reference_top10": ratio(mine["qps_top10"], reference["qps_top10_argpartition"]),
        "qps_ratio_vs_bright_top1000": ratio(mine["qps_top1000"], reference["qps_bright_top1000"]),
        "index_time_ratio_reference_over_ours": ratio(reference["index_s"], mine["index_s"]),
    }
    if rank is not None:
        n = rank["queries"]
        result["rank_bm25"] = {k: v for k, v in rank.items() if k != "tops"}
        result["rank_bm25"]["note"] = f"O(N) Python per query term: capped at {n} queries"
        result["qps_ratio_vs_rank_bm25"] = ratio(mine["qps_top10"], rank["qps_top10"])
        result["top10_overlap_rank_bm25_vs_reference"] = top10_overlap(rank["tops"], reference["tops"][:n])
    return result


def theoremqa_texts() -> tuple[list[str], list[str]]:
    """The offline TheoremQA theorem corpus and its BRIGHT queries (a small real-text check)."""
    import gzip
    import json

    from benchmarks.corpus import DATA

    theorems = json.loads((DATA / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    path = DATA / "bright" / "topics" / "topics.bright-theoremqa-theorems-original.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        queries = [json.loads(line)["query"] for line in handle]
    return [f"{name}\n{text}" for name, text in theorems.items()], queries


def ours_at_size(size: int, queries: int) -> dict[str, Any]:
    """Scaling point: our BM25 built from the streamed corpus (never all texts at once), top-100 latency."""
    from benchmarks.corpus import SyntheticCorpus
    from diver.index.lexical.bm25 import LexicalIndex, top_k, warm_kernels

    warm_kernels()
    corpus = SyntheticCorpus(size)
    query_texts = corpus.queries(queries)
    with PeakRSS() as rss:
        started = time.perf_counter()
        index = LexicalIndex.build_streaming(corpus.batches(), SETTINGS)
        seconds = time.perf_counter() - started
    index.score(query_texts[0])
    latencies, _ = timed_each(lambda q: top_k(index.score(q), 100), query_texts)
    return {
        "size": size,
        "index_s_including_generation": round(seconds, 2),
        "peak_rss_delta_mb": round(rss.delta_mb, 1),
        "query_top100": latency_stats(latencies),
    }
