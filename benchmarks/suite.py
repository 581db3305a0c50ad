"""Runs the sections of ``benchmarks.run`` (each in a forked child, so peak memory is its own) and reports."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info, run_forked

RESULTS = Path(__file__).resolve().parent / "results"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _lexical(p: dict) -> dict:
    from benchmarks.corpus import SyntheticCorpus
    from benchmarks.lexical_bench import compare, theoremqa_texts

    texts, queries = theoremqa_texts()
    out = {"theoremqa": compare(texts, queries, min(len(queries), 20), min(len(queries), 20))}
    corpus = SyntheticCorpus(p["main"])
    texts = [t for batch in corpus.batches() for t in batch]
    out["synthetic"] = compare(
        texts, corpus.queries(p["lexical_queries"]), p["rank_bm25_queries"], p["bright_queries"]
    )
    return out


def _dense(p: dict, size: int) -> dict:
    from benchmarks.dense_bench import run

    return run(size, p["dense_queries"], p["hnsw_max"])


def _collection(p: dict, size: int, full: bool) -> dict:
    from benchmarks.engine_bench import run

    if full:
        return run(size, p["search_queries"], p["real_queries"], p["real_sample_docs"])
    return run(size, min(30, p["search_queries"]), 3, 8)


def _dense_real(p: dict) -> dict:
    from benchmarks.dense_real_bench import run

    return run(**p["dense_real"])


def _llm(p: dict) -> dict:
    from benchmarks.llm_bench import run

    return run(**p["llm"])


def _bm25_update(size: int) -> dict:
    from benchmarks.bm25_update_bench import run

    return run(size)


def _write(p: dict, size: int) -> dict:
    from benchmarks.write_bench import run

    return run(size, p["write"]["queries"], old=size <= p["write"]["old_max"])


def _milvus(p: dict) -> dict:
    from benchmarks.milvus_bench import run

    return run(p["milvus"]["documents"], p["milvus"]["queries"])


def _lexical_scaling(size: int) -> dict:
    from benchmarks.lexical_bench import ours_at_size

    return ours_at_size(size, 50)


def _cpu_embed(p: dict) -> dict:
    from benchmarks.cpu_embed_bench import run

    return run(p.get("cpu_embed_queries", 48))


def _million(size: int) -> dict:
    from benchmarks.million_bench import run

    return run(size)


def _extrapolate(results: dict) -> None:
    """HNSW at the largest dense size from the largest HNSW actually built (collection chunks or 10k)."""
    from benchmarks.dense_bench import extrapolate_hnsw

    dense = results.get("dense") or {}
    sizes = [int(s) for s, d in dense.items() if "exact" in d]
    if not sizes:
        return
    target = max(sizes)
    col = results.get("collection") or {}
    if "dense" in col:
        measured = {**col["dense"]["hnsw"], "build_s": col["indexing"]["split_s"]["chroma_write_s"]}
        size = col["dense"]["vectors"]
    else:
        built = [(int(s), d["hnsw"]) for s, d in dense.items() if d.get("hnsw")]
        if not built:
            return
        size, measured = max(built, key=lambda kv: kv[0])
    if target > size:
        results["hnsw_extrapolated"] = {"target": target, **extrapolate_hnsw(measured, size, target)}


# the sections the README's performance table is made of: a run without one of them leaves the table alone
PERF_SECTIONS = frozenset({"lexical", "bm25-update", "dense", "dense-real", "write", "collection", "llm", "scaling"})


# Over 60 lines: the sections in order, each guarded by the same selection and timing.
def run_suite(p: dict, args: Any) -> int:
    from benchmarks.report import write_report

    sections = set(args.sections.split(","))
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "sections": sorted(sections),
        "threads": args.threads,
        "plan": {k: v for k, v in p.items() if k != "llm"}
        | {"llm": {**p["llm"], "concurrencies": list(p["llm"]["concurrencies"])}},
        "machine": machine_info(),
        "timings_s": {},
    }

    def section(name: str, fn: Any, *fn_args: Any) -> Any:
        _log(f"{name} ...")
        t = time.perf_counter()
        try:
            value = run_forked(fn, *fn_args)
        except RuntimeError as exc:
            _log(f"{name} FAILED: {exc}")
            value = {"error": str(exc)}
        results["timings_s"][name] = round(time.perf_counter() - t, 1)
        _log(f"{name} done in {results['timings_s'][name]}s")
        return value

    main = p["main"]
    if "lexical" in sections:
        results["lexical"] = section("lexical", _lexical, p)
    if "collection" in sections:
        results["collection"] = section(f"collection@{main}", _collection, p, main, True)
    if "dense" in sections:
        results["dense"] = {str(s): section(f"dense@{s}", _dense, p, s) for s in p["sizes"]}
    if "dense-real" in sections:
        results["dense-real"] = section("dense-real", _dense_real, p)
    if "write" in sections:
        results["write"] = {str(s): section(f"write@{s}", _write, p, s) for s in p["write"]["sizes"]}
    if "bm25-update" in sections:
        results["bm25-update"] = section(f"bm25-update@{main}", _bm25_update, main)
    if "llm" in sections:
        results["llm"] = section("llm", _llm, p)
    if "milvus" in sections:
        results["milvus"] = section(f"milvus@{p['milvus']['documents']}", _milvus, p)
    if "scaling" in sections:
        scaling: dict[str, Any] = {"bm25": {}, "collection": {}}
        for size in p["sizes"]:
            scaling["bm25"][str(size)] = section(f"bm25-scaling@{size}", _lexical_scaling, size)
            if size < main:
                scaling["collection"][str(size)] = section(f"collection@{size}", _collection, p, size, False)
        results["scaling"] = scaling
    if "cpu-embed" in sections:
        results["cpu-embed"] = section("cpu-embed", _cpu_embed, p)
    if "million" in sections:
        biggest = max(p["sizes"])
        results["million"] = section(f"million@{biggest}", _million, biggest)
    _extrapolate(results)
    results["total_s"] = round(time.perf_counter() - started, 1)
    out_dir = Path(args.out) if args.out else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = socket.gethostname().split(".")[0] or "machine"
    json_path = out_dir / f"{machine}-{stamp}{'-quick' if args.quick else ''}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    md = write_report(results, out_dir, json_path.name)
    # a full run into benchmarks/results regenerates the README's table (not a run of a few sections)
    if not args.quick and not args.out and PERF_SECTIONS <= sections:
        from benchmarks.report import targets
        from benchmarks.report_perf import update_readme

        if update_readme(targets(results), f"benchmarks/results/{json_path.name}"):
            _log("README.md performance table regenerated")
    if "cpu-embed" in results and not args.out:  # issue 24's block of the README, from this run
        from benchmarks.report_cpu import cpu_targets
        from benchmarks.report_cpu import update_readme as update_cpu_block

        if update_cpu_block(cpu_targets(results), f"benchmarks/results/{json_path.name}"):
            _log("README.md CPU-embedding table regenerated")
    for row in cpu_targets_rows(results):
        _log(" | ".join(row))
    _log(f"wrote {json_path}, {md} in {results['total_s']}s")
    return 0


def cpu_targets_rows(results: dict) -> list[tuple[str, str, str]]:
    """Issue 24's rows (measured value, ratio against the baseline of the same run), printed at the end."""
    from benchmarks.report_cpu import cpu_targets

    return cpu_targets(results)


def report_only(json_file: str) -> int:
    """Rewrite latest.md, the plots and (for a full run) the README's table from a results JSON."""
    from benchmarks.report import targets, write_report
    from benchmarks.report_perf import update_readme

    path = Path(json_file)
    results = json.loads(path.read_text(encoding="utf-8"))
    md = write_report(results, path.parent, path.name)
    ran = set(results.get("sections") or PERF_SECTIONS)  # older JSONs: full runs of every section
    if results.get("mode") == "full" and PERF_SECTIONS <= ran and "collection" in results and update_readme(targets(results), f"benchmarks/results/{path.name}"):
        _log("README.md performance table regenerated")
    if "cpu-embed" in results:
        from benchmarks.report_cpu import cpu_targets
        from benchmarks.report_cpu import update_readme as update_cpu_block

        if update_cpu_block(cpu_targets(results), f"benchmarks/results/{path.name}"):
            _log("README.md CPU-embedding table regenerated")
    _log(f"wrote {md}")
    return 0
