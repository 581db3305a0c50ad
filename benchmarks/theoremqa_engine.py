"""Indexing throughput and query latency of the engine on the TheoremQA theorem corpus (real MiniLM).

    python -m benchmarks.theoremqa_engine [--data-dir DIR]

Indexes the 354 theorems into a fresh collection with the embedding cache off (so every chunk is
embedded), then runs the 76 BRIGHT theoremqa_theorems queries in each mode and prints p50/p95 latency.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from diver.config import load_settings
from diver.datasets.theoremqa import build_theorems
from diver.index.engine import Engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="diver-tqa-"))
    settings = load_settings(data_dir=data_dir, embedding={"cache": False})
    bench = build_theorems()
    docs = list(bench.corpus)
    with Engine(settings) as engine:
        t = time.perf_counter()
        engine.embedder  # noqa: B018 - load the model outside the timed indexing
        load_s = time.perf_counter() - t
        col = engine.collection("theorems", create=True)
        t = time.perf_counter()
        report = col.upsert(docs)
        index_s = time.perf_counter() - t
        t = time.perf_counter()
        col.warm()
        bm25_build_s = time.perf_counter() - t
        print(
            f"model load {load_s:.1f}s; indexed {report.added} docs / {report.chunks} chunks in {index_s:.1f}s "
            f"= {report.added / index_s:.1f} docs/s, {report.chunks / index_s:.1f} chunks/s; BM25 build {bm25_build_s:.2f}s"
        )
        queries = list(bench.queries.values())
        for mode in ("bm25", "dense", "hybrid"):
            col.search(queries[0], k=10, mode=mode)  # warm
            times = []
            for query in queries:
                t = time.perf_counter()
                col.search(query, k=10, mode=mode)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            p95 = times[int(0.95 * (len(times) - 1))]
            print(
                f"{mode:>6}: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms over {len(times)} queries"
            )


if __name__ == "__main__":
    main()
