"""One command for the whole suite: ``python -m benchmarks.run [--sizes 10k,100k,1m] [--quick]``.

Writes ``benchmarks/results/<machine>-<date>.json``, ``benchmarks/results/latest.md`` and PNG plots.
``--quick`` runs every section at small sizes (2k and 10k documents, fewer queries, no 1M) in a few
minutes; the full run targets under 30 minutes on the 2-core development machine. BLAS / OpenMP threads
are pinned (``--threads``, default 1): on a shared 2-core host, two spinning BLAS or torch threads per
process were measured 20-40x slower than one.
"""

from __future__ import annotations

import argparse
import os
import sys


def _pin_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[name] = str(threads)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 and size % 1_000_000 == 0 else f"{size // 1000}k"


def plan(args: argparse.Namespace) -> dict:
    if args.quick:
        sizes = [parse_size(s) for s in (args.sizes or "2k,10k").split(",")]
        return {
            "sizes": sizes,
            "main": sizes[-1],
            "lexical_queries": 40,
            "rank_bm25_queries": 2,
            "bright_queries": 10,
            "search_queries": 30,
            "real_queries": 10,
            "real_sample_docs": 24,
            "dense_queries": 30,
            "hnsw_max": 10_000,
            "write": {"sizes": [10_000], "old_max": 10_000, "queries": 50},
            "dense_real": {"sizes": (5_000, 10_000), "efs": (20, 60, 100), "queries": 50, "real_queries": 10},
            "llm": {"documents": 40, "delay_s": 0.05, "concurrencies": (1, 4, 16)},
            "cpu_embed_queries": 16,
            "milvus": {"documents": 1_000, "queries": 10},
        }
    sizes = [parse_size(s) for s in (args.sizes or "10k,100k,1m").split(",")]
    return {
        "sizes": sizes,
        "main": 100_000 if 100_000 in sizes else sorted(sizes)[len(sizes) // 2],
        "lexical_queries": 200,
        "rank_bm25_queries": 5,
        "bright_queries": 50,
        "search_queries": 100,
        "real_queries": 30,
        "real_sample_docs": 100,
        "dense_queries": 100,
        "hnsw_max": 10_000,
        "write": {"sizes": [50_000, 166_780], "old_max": 166_780, "queries": 200},  # ~3 + ~5 min
        "dense_real": {"queries": 200, "real_queries": 50},  # sizes 5k..167k chunks (dense_real_bench.SIZES)
        "llm": {"documents": 100, "delay_s": 0.3, "concurrencies": (1, 4, 16, 64)},
        # ~10 min on the 2-core machine (milvus-lite indexes at ~260 docs/s and answers a hybrid search in ~2 s at
        # this size: its BM25 and row scans are Python; see docs/scaling.md)
        "milvus": {"documents": 100_000, "queries": 50},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", help="comma-separated corpus sizes, e.g. 10k,100k,1m")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads (default 1)")
    parser.add_argument(
        "--sections",
        default="lexical,bm25-update,dense,dense-real,write,collection,llm,milvus,scaling,cpu-embed,million",
        help="million: the largest size's chunks through the collection path (skipped with --quick); "
        "cpu-embed: issue 24's CPU embedding backends (runs alone in ~10 min: --sections cpu-embed)",
    )
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument(
        "--report",
        metavar="JSON",
        help="only rewrite latest.md, the plots and the README table from a results JSON",
    )
    args = parser.parse_args(argv)
    from diver.errors import MissingDependency, require_extra

    try:  # before the suite's imports (psutil, gensim, rank_bm25...): one line naming the extra
        require_extra("bench", "python -m benchmarks.run")
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.report:
        from benchmarks.suite import report_only

        return report_only(args.report)
    if args.quick:
        args.sections = ",".join(s for s in args.sections.split(",") if s != "million")
        os.environ.setdefault("DIVER_BENCH_REAL_CHUNKS", "2000")  # embed 2k real chunks, not ~25k
    _pin_threads(args.threads)
    from benchmarks.suite import run_suite

    return run_suite(plan(args), args)


if __name__ == "__main__":
    sys.exit(main())
