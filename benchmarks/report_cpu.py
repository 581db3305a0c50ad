"""Issue 24's targets (fast on a laptop CPU) from the ``cpu-embed`` section, for the report and the README.

Rows the section measures in its own run carry the ratio against torch measured side by side. Rows it
cannot re-measure in ~10 minutes on 2 cores (10k/100k-document indexing, hybrid search at 100k documents,
the chunking share, recall at 167k/1M chunks) are composed from the last full run's JSON and say so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks.report_format import fmt as _fmt
from benchmarks.report_format import get as _get
from benchmarks.report_format import met as _met

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- cpu-targets:begin -->", "<!-- cpu-targets:end -->"
FULL_RUN = "vm-2026-11-27.json"  # the last full run: 100k indexing split, hybrid parts, dense-real recall
EF_SWEEP = "vm-2026-11-27-hnsw-1m-ef.json"  # ef_search sweep on 1M real-derived vectors


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _embedding_row(c: dict) -> tuple[str, str, str]:
    rows = _get(c, "embedding", "backends", default={}) or {}
    torch, auto = rows.get("torch") or {}, rows.get("auto") or {}
    if not torch or not auto:
        return ("24.1 CPU embedding >= 3.0x torch encode, nDCG@10 within 0.5", "not run", "n/a")
    ratio = auto["chunks_per_s"] / torch["chunks_per_s"]
    sets = [k for k in torch if k.startswith("ndcg10:")]
    deltas = {k: auto[k] - torch[k] for k in sets}
    quality = "; ".join(f"{k[7:]} {auto[k]:.2f} vs {torch[k]:.2f}" for k in sets)
    others = ", ".join(
        f"{name} {row['chunks_per_s'] / torch['chunks_per_s']:.2f}x (min cos {row['min_cosine_vs_torch']:.4f})"
        for name, row in rows.items()
        if name not in ("torch", "auto")
    )
    text = (
        f"auto = {c['auto_choice']['summary']}: {auto['chunks_per_s']:.1f} vs {torch['chunks_per_s']:.1f} chunks/s "
        f"= **{ratio:.2f}x** over {_fmt(_get(c, 'embedding', 'documents'))} offline documents; nDCG@10 {quality}; "
        f"others: {others}; load average {c.get('load_average_at_start')} -> {c.get('load_average_at_end')} on 2 "
        "shared cores: each backend ran after the other, so the ratio carries the load's drift"
    )
    ok = ratio >= 3.0 and all(abs(d) <= 0.5 for d in deltas.values())
    return ("24.1 CPU embedding chunks/s >= 3.0x plain torch encode, nDCG@10 within 0.5 on both offline sets", text, _met(ok))


def _indexing_row(c: dict, full: dict, name: str, run: dict) -> tuple[str, str, str]:
    idx = c.get("indexing") or {}
    if not idx:
        return ("24.2 end-to-end indexing >= 0.9x embedding-only rate", "not run", "n/a")
    per_doc_embed = idx["embedding_s"] / idx["documents"]
    scaled = []
    points = {
        10_000: (_get(full, "scaling", "collection", "10000", "indexing", "seconds"), FULL_RUN),
        100_000: (_get(run, "collection", "indexing", "non_embedding_s"), name) if run
        else (_get(full, "collection", "indexing", "non_embedding_s"), FULL_RUN),
    }
    ratios = [idx["ratio"]]
    for size, (rest, source) in points.items():
        if rest is None:
            continue
        rest_per_doc = float(rest) / size
        ratio = per_doc_embed / (per_doc_embed + rest_per_doc)
        ratios.append(ratio)
        scaled.append(f"{_fmt(size)} docs {ratio:.3f} (scaled: this run's embedding time per doc + the rest per doc of `{source}`)")
    text = (
        f"measured at {idx['documents']} docs ({idx['chunks']} chunks, {idx['backend']}): {idx['docs_per_s']:.2f} docs/s "
        f"vs embedding-only {idx['embedding_only_docs_per_s']:.2f} = **{idx['ratio']:.3f}x**; " + "; ".join(scaled)
    )
    return ("24.2 end-to-end indexing docs/s >= 0.9x the embedding-only rate (real MiniLM)", text, _met(min(ratios) >= 0.9))


def _query_row(c: dict) -> tuple[str, str, str]:
    q = c.get("query_p50") or {}
    if "torch" not in q or "auto" not in q:
        return ("24.3 query embedding p50 <= 15 ms, >= 2.5x torch", "not run", "n/a")
    auto, torch = q["auto"]["p50_ms"], q["torch"]["p50_ms"]
    g = c.get("gflops") or {}
    text = (
        f"{auto:.2f} ms vs torch {torch:.2f} ms = **{torch / auto:.2f}x** ({_get(c, 'queries', 'n')} BRIGHT queries, "
        f"median {_get(c, 'queries', 'median_words')} words / {_get(c, 'queries', 'median_tokens')} tokens); "
        f"forward {g.get('forward_gflop')} GFLOP: {g.get('auto')} GFLOP/s (torch {g.get('torch')}) vs torch matmul of "
        f"the same shapes {g.get('peak_same_shapes_gflops')} GFLOP/s, 1024^3 GEMM {g.get('peak_gemm_1024_gflops')}; "
        f"cached query p50 {_get(c, 'cached_query_ms', 'p50_ms')} ms (no model call)"
    )
    return ("24.3 query embedding p50 <= 15 ms (BRIGHT-length), >= 2.5x torch in the same run", text, _met(auto <= 15 and torch / auto >= 2.5))


def collection_run() -> tuple[str, dict[str, Any]]:
    """The newest results JSON whose collection section ran at 100,000 documents with BRIGHT-length queries
    through the real query encoder (``--sections collection --sizes 100k``), else ("", {})."""
    def day(path: Path) -> str:  # the run's date in its name (a fresh clone's files share one mtime)
        found = re.search(r"\d{4}-\d{2}-\d{2}", path.name)
        return found.group(0) if found else ""

    for path in sorted(RESULTS.glob("*.json"), key=lambda p: (day(p), p.name), reverse=True):
        run = _load(path.name)
        col = run.get("collection") or {}
        if col.get("size") == 100_000 and col.get("search_real_bright_queries"):
            return path.name, run
    return "", {}


def _hybrid_measured(name: str, run: dict) -> tuple[str, str, str]:
    col = run["collection"]
    total = _get(col, "search_real_bright_queries", "total", "p50_ms")
    parts = _get(col, "search_real_bright_queries", "parts_p50_ms", default={}) or {}
    embed = _get(col, "bright_query_embedding", "p50_ms")
    text = (
        f"{total:.2f} ms measured end to end (`{name}`: 48 BRIGHT queries through the real query encoder, "
        f"{col.get('embedding_backend')}; p95 {_get(col, 'search_real_bright_queries', 'total', 'p95_ms')}); "
        f"of it query embedding {parts.get('embed')} ms (alone: p50 {embed}), "
        + ", ".join(f"{k} {v}" for k, v in parts.items() if k != "embed")
    )
    return ("24.4 hybrid p50 at 100,000 docs incl. real query embedding <= 25 ms", text, _met(total <= 25))


def _hybrid_row(c: dict, full: dict, name: str, run: dict) -> tuple[str, str, str]:
    if run:
        return _hybrid_measured(name, run)
    parts = _get(full, "collection", "search_real_minilm", "parts_p50_ms", default={}) or {}
    auto = _get(c, "query_p50", "auto", "p50_ms")
    if not parts or auto is None:
        return ("24.4 hybrid p50 at 100,000 docs incl. query embedding <= 25 ms", "not measured", "n/a")
    rest = sum(v for k, v in parts.items() if k != "embed")
    total = rest + float(auto)
    text = (
        f"composed, not measured end to end: {total:.2f} ms = this run's query embedding p50 {auto:.2f} ms + the "
        f"non-embedding parts p50 {rest:.2f} ms of `{FULL_RUN}` (bm25, dense, fuse_fetch, glue)"
    )
    return ("24.4 hybrid p50 at 100,000 docs incl. real query embedding <= 25 ms", text, _met(total <= 25) + " (composed)")


def _chunking_row(full: dict, name: str, run: dict) -> tuple[str, str, str]:
    if run:
        idx = run["collection"]["indexing"]
        split = idx["split_s"]
        non_embedding = _non_embedding_s(idx)
        share = split["chunking_s"] / non_embedding
        waited = idx.get("waited_for_prepare_s")
        critical = f"; on the critical path at most {100 * waited / non_embedding:.1f}% (the writer waited {waited} s " \
            "for the worker's chunking + fake embedding)" if waited is not None else ""  # fmt: skip
        text = (
            f"CPU time {100 * share:.1f}% at 100,000 docs (`{name}`): chunking {split['chunking_s']} s (one Rust "
            f"encode_batch per write batch + the windows, on the pipeline's worker thread, beside the writes) of "
            f"{non_embedding:.1f} s non-embedding wall time{critical}; store writes {split['chroma_write_s']} s, catalog "
            f"{split['catalog_commit_s']} s, BM25 build {split['bm25_build_s']} s; before issue 24: "
            f"{_chunking_share(full)} (`{FULL_RUN}`, no pipeline)"
        )
        return ("24.5 chunking share of non-embedding indexing time at 100,000 docs <= 10%", text, _met(share <= 0.10))
    idx = _get(full, "collection", "indexing", default={}) or {}
    if not idx:
        return ("24.5 chunking <= 10% of non-embedding indexing", "not measured", "n/a")
    share = idx["split_s"]["chunking_s"] / _non_embedding_s(idx)
    text = (
        f"{100 * share:.1f}% at 100,000 docs (`{FULL_RUN}`, before issue 24). Since then chunking tokenizes a "
        "write batch with one Rust encode_batch call and runs on the pipeline's worker thread, beside the store "
        "writes; the batch call measured 1.0-1.08x the per-document call (2,000 docs): the WordPiece "
        "tokenization itself is the cost, so this row stays missed"
    )
    return ("24.5 chunking share of non-embedding indexing time at 100,000 docs <= 10%", text, _met(share <= 0.10))


def _non_embedding_s(idx: dict) -> float:
    """Indexing wall time less the (fake) embedder's: what chunking's share is a share of."""
    return float(idx["seconds"] - idx["split_s"]["fake_embedding_s"])


def _chunking_share(full: dict) -> str:
    idx = _get(full, "collection", "indexing", default={}) or {}
    if not idx:
        return "not measured"
    return f"{100 * idx['split_s']['chunking_s'] / _non_embedding_s(idx):.1f}% of {_non_embedding_s(idx):.1f} s"


def _recall_row(full: dict, sweep: dict) -> tuple[str, str, str]:
    from diver.config import StoreSettings
    from diver.index.dense.search import search_beam_for

    settings = StoreSettings()
    ef_167 = search_beam_for(166_780, settings)
    per_size = _get(full, "dense-real", "per_size", default={}) or {}
    at167 = _get(per_size, "166780", "hnsw", str(ef_167), "recall_at_10")
    ef_1m = search_beam_for(1_000_000, settings)
    at1m = _get(sweep, "search", str(ef_1m), "recall_at_10")
    values = [1.0, at167, at1m]
    text = (
        f"10k: exact path below store.dense_exact_below ({_fmt(settings.dense_exact_below)} chunks) = 1.0; "
        f"167k: ef_search {ef_167} -> {_fmt(at167, 4)} (`{FULL_RUN}` dense-real); "
        f"1M: ef_search {ef_1m} by size -> {_fmt(at1m, 4)} (`{EF_SWEEP}`, chunk level); from earlier runs, "
        "the rule (store.hnsw_search_ef_by_size) picks the measured beam"
    )
    ok = all(v is not None and float(v) >= 0.95 for v in values)
    return ("24.6 recall@10 >= 0.95 at 10k / 167k / 1M chunks with default settings", text, _met(ok) + " (earlier runs)")


def cpu_targets(r: dict) -> list[tuple[str, str, str]]:
    c = r.get("cpu-embed") or {}
    if not c or "error" in c:
        return []
    full, sweep = _load(FULL_RUN), _load(EF_SWEEP)
    name, run = collection_run()  # read once: the 100k collection run rows 24.2, 24.4 and 24.5 use
    return [
        _embedding_row(c),
        _indexing_row(c, full, name, run),
        _query_row(c),
        _hybrid_row(c, full, name, run),
        _chunking_row(full, name, run),
        _recall_row(full, sweep),
    ]


def cpu_section(r: dict) -> list[str]:
    c = r.get("cpu-embed") or {}
    if not c or "error" in c:
        return []
    lines = [
        "",
        f"## CPU embedding backends (issue 24; load average {c.get('load_average_at_start')} -> "
        f"{c.get('load_average_at_end')}, shared machine)",
        "",
        "| backend | chunks/s | x torch | min cos | nDCG@10 sets | query p50 ms | x torch |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = _get(c, "embedding", "backends", default={}) or {}
    torch = rows.get("torch") or {}
    queries = c.get("query_p50") or {}
    for name, row in rows.items():
        ndcg = ", ".join(f"{v:.2f}" for k, v in row.items() if k.startswith("ndcg10:"))
        q = _get(queries, name, "p50_ms")
        tq = _get(queries, "torch", "p50_ms")
        lines.append(
            f"| {name}: {row['picked']} | {row['chunks_per_s']:.1f} | {row['chunks_per_s'] / torch['chunks_per_s']:.2f} | "
            f"{row['min_cosine_vs_torch']:.4f} | {ndcg} | {_fmt(q, 2)} | {_fmt((tq / q) if q and tq else None, 2)} |"
        )
    lines += ["", f"auto's trials: `{json.dumps(_get(c, 'auto_choice', 'trials'))}`"]
    return lines


def update_readme(rows: list[tuple[str, str, str]], source: str, readme: Path = README) -> bool:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text or not rows:
        return False
    table = "\n".join(
        [BEGIN, f"Generated from `{source}` (section cpu-embed) by `make bench`; misses included.", "",
         "| target | measured | |", "|---|---|---|"]
        + [f"| {a} | {b} | {c} |" for a, b, c in rows]
        + [END]
    )  # fmt: skip
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: table, text), encoding="utf-8")
    return True
