"""Markdown table and plots from a results dict (measured figures only; missing parts show as n/a)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report_format import fmt as _fmt
from benchmarks.report_format import get as _get
from benchmarks.report_format import met as _met


# Over 60 lines: one row per performance target, in the report's order.
def targets(r: dict) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    lex = _get(r, "lexical", "synthetic", default={})
    n = _get(lex, "documents")
    core = _get(lex, "qps_ratio_vs_reference_scores_only")
    bright = _get(lex, "qps_ratio_vs_bright_top1000")
    overlap = _get(lex, "top10_overlap_ours_vs_reference")
    rows.append(
        (
            f"1. BM25 queries/s >= 20x gensim LuceneBM25Model at {_fmt(n)} docs, same top-10",
            f"{_fmt(core)}x vs reference scoring alone; {_fmt(bright)}x vs BRIGHT's top-1000 path; "
            f"top-10 overlap {_fmt(overlap, 4)}",
            _met(None if core is None else core >= 20 and (overlap or 0) >= 0.99),
        )
    )
    dense = _get(r, "collection", "dense", default={})
    recall = _get(dense, "hnsw", "recall_at_10")
    rows.append(
        (
            "2a. HNSW recall@10 >= 0.95",
            f"{_fmt(recall, 4)} over {_fmt(_get(dense, 'vectors'))} chunk vectors "
            f"(10k: {_fmt(_get(r, 'dense', '10000', 'hnsw', 'recall_at_10'), 4)})",
            _met(None if recall is None else recall >= 0.95),
        )
    )
    big = max((int(s) for s in _get(r, "dense", default={}) or {}), default=None)
    exact_big = _get(r, "dense", str(big), "exact", "numpy", "p50_ms") if big else None
    measured = _get(r, "million", "store_query", "p50_ms")
    if measured and exact_big:  # section 10 built the HNSW at 1M
        speed = round(exact_big / measured, 1)
        text = (
            f"exact numpy p50 {_fmt(exact_big)} ms; HNSW p50 {_fmt(measured)} ms measured on "
            f"{_fmt(_get(r, 'million', 'indexing', 'chunks'))} chunk vectors (section 10) -> {_fmt(speed)}x"
        )
        status = _met(speed >= 10)
    else:
        extrap = _get(r, "hnsw_extrapolated", "p50_ms")
        speed = round(exact_big / extrap, 1) if exact_big and extrap else None
        text = (
            f"exact numpy p50 {_fmt(exact_big)} ms measured; HNSW p50 {_fmt(extrap)} ms extrapolated "
            f"from {_fmt(_get(r, 'hnsw_extrapolated', 'extrapolated_from'))} (build "
            f"{_fmt(_get(r, 'hnsw_extrapolated', 'build_s'), 0)} s est.) -> {_fmt(speed)}x"
        )
        status = _met(None if speed is None else speed >= 10) + (" (extrapolated)" if speed else "")
    rows.append((f"2b. HNSW >= 10x faster than exact at {_fmt(big)} vectors", text, status))
    real = _get(r, "collection", "search_real_minilm", "total", "p50_ms")
    fake = _get(r, "collection", "search_fake_query_embedding", "total", "p50_ms")
    rows.append(
        (
            f"3. hybrid search p50 <= 50 ms at {_fmt(_get(r, 'collection', 'size'))} docs",
            f"{_fmt(real)} ms with real MiniLM query embedding (p95 "
            f"{_fmt(_get(r, 'collection', 'search_real_minilm', 'total', 'p95_ms'))}); {_fmt(fake)} ms "
            "with precomputed-cost query vectors",
            _met(None if real is None else real <= 50),
        )
    )
    idx = _get(r, "collection", "indexing", default={})
    share = _get(idx, "embedding_share_cpu")
    rows.append(
        (
            "4a. embedding >= 90% of indexing time",
            f"{_fmt(None if share is None else share * 100, 1)}% (MiniLM on CPU, "
            f"{_fmt(_get(idx, 'real_minilm_cpu_chunks_per_s'), 1)} chunks/s; rest measured "
            f"{_fmt(_get(idx, 'non_embedding_s'))} s for {_fmt(_get(idx, 'documents'))} docs)",
            _met(None if share is None else share >= 0.9),
        )
    )
    rss = _get(idx, "peak_rss_mb")
    rows.append(
        (
            "4b. peak RSS < 4 GiB while indexing",
            f"{_fmt(rss, 0)} MiB peak ({_fmt(_get(idx, 'rss_delta_mb'), 0)} MiB above start)",
            _met(None if rss is None else rss < 4096),
        )
    )
    llm_rows = _get(r, "llm", "rows", default=[]) or []
    worst = max((row["ratio_to_ideal"] for row in llm_rows), default=None)
    rows.append(
        (
            f"5a. pointwise rerank of {_fmt(_get(r, 'llm', 'documents'))} docs takes ~N/C delays",
            "; ".join(
                f"C={row['concurrency']}: {row['delays']} delays (ideal {row['ideal_delays']})"
                for row in llm_rows
            )
            or "n/a",
            _met(None if worst is None else worst <= 1.5),
        )
    )
    rerun = _get(r, "llm", "cached", "rerun_requests")
    rows.append(
        (
            "5b. cached rerun makes zero calls",
            f"{_fmt(rerun)} requests on rerun",
            _met(None if rerun is None else rerun == 0),
        )
    )
    rows.append(("6. scaling log-log plot", "scaling.png", _met(bool(_get(r, "scaling")))))
    from benchmarks.report_perf import gpu_row, perf_targets

    rows += perf_targets(r)
    rows.append(gpu_row())
    from benchmarks.report_cpu import cpu_targets

    rows += cpu_targets(r)
    return rows


# Over 60 lines: a linear list of markdown sections, in the report's order.
def write_report(r: dict, out_dir: Path, json_name: str) -> Path:
    m = r.get("machine", {})
    lines = [
        f"# DIVER benchmarks ({r.get('mode')} run, {r.get('started')})",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB RAM, Python {m.get('python')}; "
        f"load average at start {m.get('load_average_at_start')} (shared machine); BLAS/torch threads: {r.get('threads')}. "
        f"Suite wall time {r.get('total_s')} s. Raw figures: `{json_name}`.",
        "",
        "| target | measured | status |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(r)]
    lex = _get(r, "lexical", default={}) or {}
    if lex:
        lines += ["", "## 1. Lexical (queries/s = 1 / mean latency; index time includes tokenization)", ""]
        lines += [
            "| corpus | side | index s | peak RSS delta MiB | p50 ms | q/s | top-10 overlap with reference |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in lex.items():
            if not isinstance(c, dict) or "ours" not in c:
                continue
            label = f"{name} ({_fmt(c['documents'])} docs, {c['queries']} queries)"
            o, g = c["ours"], c["gensim_reference"]
            lines.append(
                f"| {label} | ours top-10 | {o['index_s']} | {o['peak_rss_delta_mb']} | {o['top10']['p50_ms']} | {o['qps_top10']} | {c['top10_overlap_ours_vs_reference']} |"
            )
            lines.append(f"| | ours top-1000 | | | {o['top1000']['p50_ms']} | {o['qps_top1000']} | |")
            lines.append(
                f"| | gensim scores only | {g['index_s']} | {g['peak_rss_delta_mb']} | {g['scores_only']['p50_ms']} | {g['qps_scores_only']} | 1 |"
            )
            lines.append(
                f"| | gensim + argpartition top-10 | | | {g['top10_argpartition']['p50_ms']} | {g['qps_top10_argpartition']} | |"
            )
            lines.append(
                f"| | gensim + BRIGHT dict/sort top-1000 | | | {g['bright_top1000_dict_sort']['p50_ms']} | {g['qps_bright_top1000']} | |"
            )
            if "rank_bm25" in c:
                b = c["rank_bm25"]
                lines.append(
                    f"| | rank_bm25 BM25Okapi ({b['note']}) | {b['index_s']} | {b['peak_rss_delta_mb']} | {b['top10']['p50_ms']} | {b['qps_top10']} | {c['top10_overlap_rank_bm25_vs_reference']} |"
                )
            lines.append(
                f"| | **ratios** | ref/ours index {c['index_time_ratio_reference_over_ours']}x | | | "
                f"{c['qps_ratio_vs_reference_scores_only']}x (scores), {c['qps_ratio_vs_bright_top1000']}x (BRIGHT path), "
                f"{c.get('qps_ratio_vs_rank_bm25')}x (rank_bm25) | identical lists {c['top10_identical_ours_vs_reference']} |"
            )
    dense = _get(r, "dense", default={}) or {}
    col_dense = _get(r, "collection", "dense")
    if dense or col_dense:
        lines += ["", "## 2. Dense: chroma HNSW (our settings) vs exact search, 384 dims", ""]
        lines += [
            "| vectors | exact numpy p50/p95 ms | exact torch p50/p95 ms | torch batch-100 ms/query | HNSW p50/p95 ms | recall@10 | HNSW build | speed-up vs numpy |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for size, d in sorted(dense.items(), key=lambda kv: int(kv[0])):
            if "exact" not in d:
                continue
            e, h = d["exact"], d.get("hnsw")
            hn = f"{h['p50_ms']} / {h['p95_ms']}" if h else "not built (time budget)"
            lines.append(
                f"| {_fmt(int(size))} clustered | {e['numpy']['p50_ms']} / {e['numpy']['p95_ms']} | {e['torch']['p50_ms']} / {e['torch']['p95_ms']} | "
                f"{e['torch_batch100_ms_per_query']} | {hn} | {h['recall_at_10'] if h else 'n/a'} | "
                f"{str(h['build_s']) + ' s (' + str(h['vectors_per_s']) + '/s)' if h else 'n/a'} | {d.get('speedup_p50_hnsw_vs_numpy', 'n/a')} |"
            )
        if col_dense:
            c = col_dense
            build = _get(r, "collection", "indexing", "split_s", "chroma_write_s")
            lines.append(
                f"| {_fmt(c['vectors'])} collection chunks | {c['exact_numpy']['p50_ms']} / {c['exact_numpy']['p95_ms']} | "
                f"{c['exact_torch']['p50_ms']} / {c['exact_torch']['p95_ms']} | {c['exact_torch_batch100_ms_per_query']} | "
                f"{c['hnsw']['p50_ms']} / {c['hnsw']['p95_ms']} | {c['hnsw']['recall_at_10']} | {_fmt(build)} s (upsert path) | {c['speedup_p50_hnsw_vs_numpy']} |"
            )
        ex = r.get("hnsw_extrapolated")
        if ex:
            lines.append(
                f"| 1M HNSW extrapolated | | | | {ex['p50_ms']} / {ex['p95_ms']} | | ~{_fmt(ex['build_s'], 0)} s | |"
            )
    col = r.get("collection") or {}
    if "indexing" in col:
        i = col["indexing"]
        lines += ["", f"## 3-4. Collection at {_fmt(col['size'])} documents ({_fmt(i['chunks'])} chunks)", ""]
        lines.append(
            f"Indexing (real upsert path, hash embedder): {i['seconds']} s = {i['docs_per_s_without_embedding']} docs/s without embedding; "
            f"peak RSS {i['peak_rss_mb']} MiB. Split (s): "
            + ", ".join(f"{k[:-2]} {v}" for k, v in i["split_s"].items())
            + "."
        )
        lines.append(
            f"Real MiniLM on this CPU: {i['real_minilm_cpu_chunks_per_s']} chunks/s ({i['real_minilm_sample_chunks']} sampled chunks) -> "
            f"embedding {i['estimated_real_embedding_s']} s estimated for all chunks, {round(i['embedding_share_cpu'] * 100, 1)}% of indexing; "
            f"~{i['estimated_docs_per_s_real_cpu']} docs/s end to end on CPU."
        )
        lines += ["", "| search (hybrid, k=10) | p50 ms | p95 ms | split p50 ms |", "|---|---|---|---|"]
        for name, key in (
            ("hash query vectors", "search_fake_query_embedding"),
            ("real MiniLM query embedding", "search_real_minilm"),
        ):
            s = col.get(key)
            if s:
                parts = ", ".join(f"{k} {v}" for k, v in s["parts_p50_ms"].items())
                lines.append(
                    f"| {name} ({s['total']['n']} queries) | {s['total']['p50_ms']} | {s['total']['p95_ms']} | {parts} |"
                )
        q = col.get("minilm_query_embedding")
        if q:
            lines.append(f"| MiniLM query embedding alone | {q['p50_ms']} | {q['p95_ms']} | |")
    llm = r.get("llm") or {}
    if "rows" in llm:
        lines += [
            "",
            f"## 5. LLM pointwise rerank, {llm['documents']} docs, server delay {llm['delay_s']} s",
            "",
        ]
        lines += [
            "| concurrency | seconds | delays | ideal | ratio | max in flight | requests |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in llm["rows"]:
            lines.append(
                f"| {row['concurrency']} | {row['seconds']} | {row['delays']} | {row['ideal_delays']} | {row['ratio_to_ideal']} | {row['max_in_flight']} | {row['server_requests']} |"
            )
        c = llm["cached"]
        lines.append(
            f"\nCached: first run {c['first_run_requests']} requests in {c['first_run_s']} s; rerun {c['rerun_requests']} requests, {c['rerun_cache_hits']} cache hits, {c['rerun_s']} s."
        )
    sc = r.get("scaling") or {}
    if sc:
        lines += [
            "",
            "## 6. Scaling (see scaling.png)",
            "",
            "| size | BM25 index s (incl. generation) | BM25 RSS delta MiB | BM25 top-100 p50 ms | exact numpy p50 ms | collection index s | collection peak RSS MiB | hybrid p50 ms (hash query vectors) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for size, row in sorted(_scaling_points(r).items()):
            lines.append(
                "| "
                + " | ".join(
                    [_fmt(size)]
                    + [
                        _fmt(row.get(k))
                        for k in (
                            "bm25_index_s",
                            "bm25_rss",
                            "bm25_p50",
                            "exact_p50",
                            "col_index_s",
                            "col_rss",
                            "col_p50",
                        )
                    ]
                )
                + " |"
            )
    from benchmarks.milvus_bench import milvus_section
    from benchmarks.report_cpu import cpu_section
    from benchmarks.report_perf import perf_sections

    lines += perf_sections(r)
    lines += cpu_section(r)
    lines += milvus_section(r.get("milvus"))
    lines += [
        "",
        "Timings per section (s): " + ", ".join(f"{k} {v}" for k, v in r.get("timings_s", {}).items()),
    ]
    # a run of the cpu-embed section alone keeps the full run's latest.md
    alone = set(r.get("timings_s", {})) == {"cpu-embed"}
    path = out_dir / ("latest-cpu-embed.md" if alone else "latest.md")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plots(r, out_dir)
    return path


def _scaling_points(r: dict) -> dict[int, dict[str, float]]:
    points: dict[int, dict[str, float]] = {}
    for size, b in (_get(r, "scaling", "bm25", default={}) or {}).items():
        if "size" in b:
            points.setdefault(int(size), {}).update(
                bm25_index_s=b["index_s_including_generation"],
                bm25_rss=b["peak_rss_delta_mb"],
                bm25_p50=b["query_top100"]["p50_ms"],
            )
    for size, d in (_get(r, "dense", default={}) or {}).items():
        if "exact" in d:
            points.setdefault(int(size), {}).update(
                exact_p50=d["exact"]["numpy"]["p50_ms"], torch_p50=d["exact"]["torch"]["p50_ms"]
            )
            if d.get("hnsw"):
                points[int(size)].update(hnsw_p50=d["hnsw"]["p50_ms"], hnsw_build=d["hnsw"]["build_s"])
    cols = dict(_get(r, "scaling", "collection", default={}) or {})
    if "indexing" in (r.get("collection") or {}):
        cols[str(r["collection"]["size"])] = r["collection"]
    for size, c in cols.items():
        if "indexing" in c:
            points.setdefault(int(size), {}).update(
                col_index_s=c["indexing"]["seconds"],
                col_rss=c["indexing"]["peak_rss_mb"],
                col_p50=c["search_fake_query_embedding"]["total"]["p50_ms"],
            )
            if "dense" in c:
                points[int(size)].update(
                    hnsw_p50=c["dense"]["hnsw"]["p50_ms"],
                    hnsw_build=c["indexing"]["split_s"]["chroma_write_s"],
                )
    return points


# Over 60 lines: one matplotlib figure per panel, in order.
def _plots(r: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.report_perf import dense_real_points

    points = _scaling_points(r)
    dense_real_points(r, points)
    if points:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        series = [
            (
                axes[0],
                "index time (s)",
                [
                    ("bm25_index_s", "BM25 (ours, incl. generation)"),
                    ("col_index_s", "collection upsert (hash embedder)"),
                    ("hnsw_build", "chroma HNSW build"),
                ],
            ),
            (
                axes[1],
                "peak memory (MiB)",
                [("bm25_rss", "BM25 build RSS delta"), ("col_rss", "collection indexing peak RSS")],
            ),
            (
                axes[2],
                "query latency p50 (ms)",
                [
                    ("bm25_p50", "BM25 top-100"),
                    ("exact_p50", "exact numpy"),
                    ("torch_p50", "exact torch"),
                    ("hnsw_p50", "chroma HNSW"),
                    ("col_p50", "hybrid search (hash query vec)"),
                    ("real_exact_p50", "dense, exact path (real vectors)"),
                    ("real_hnsw_p50", "dense, HNSW path (real vectors)"),
                ],
            ),
        ]
        for ax, title, keys in series:
            for key, name in keys:
                xs = sorted(s for s, row in points.items() if row.get(key))
                if xs:
                    ax.plot(xs, [points[s][key] for s in xs], marker="o", label=name)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("corpus size (documents / vectors)")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "scaling.png", dpi=110)
        plt.close(fig)
    rows = _get(r, "llm", "rows")
    if rows:
        fig, ax = plt.subplots(figsize=(5, 4))
        cs = [row["concurrency"] for row in rows]
        ax.plot(cs, [row["seconds"] for row in rows], marker="o", label="measured")
        ax.plot(cs, [row["ideal_s"] for row in rows], linestyle="--", label="ceil(N/C) x delay")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency C")
        ax.set_ylabel("seconds")
        ax.set_title("pointwise rerank vs concurrency")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "llm_concurrency.png", dpi=110)
        plt.close(fig)
