"""Issue 13's targets (write path, dense on real embeddings, BM25 updates, 1M chunks, GPU) for the report,
and the README's performance block regenerated from the targets table."""

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
BEGIN, END = "<!-- perf-targets:begin -->", "<!-- perf-targets:end -->"


def latest_gpu_probe(folder: Path = RESULTS / "gpu") -> tuple[str, dict] | None:
    """The newest ``*-probe.json`` written by ``benchmarks/gpu_probe.py`` on a lent GPU machine."""
    files = sorted(folder.glob("*-probe.json"))
    if not files:
        return None
    return files[-1].name, json.loads(files[-1].read_text(encoding="utf-8"))


def gpu_row() -> tuple[str, str, str]:
    found = latest_gpu_probe()
    if not found:
        return ("GPU: our encode >= 4x plain encode", "not run (no GPU lent): benchmarks/gpu_probe.py", "n/a")
    name, probe = found
    rows = probe.get("encode") or []
    text = "; ".join(
        f"{_fmt(row['docs'])} docs {row['ratio']}x ({_fmt(row['ours_docs_per_s'], 0)} vs "
        f"{_fmt(row['plain_docs_per_s'], 0)} docs/s)"
        for row in rows
    )
    exact = probe.get("exact") or {}
    if exact:
        text += (
            f"; exact top-10 over {_fmt(exact.get('vectors'))} fp16 vectors {exact.get('one_query_ms')} ms/query "
            f"({exact.get('batch100_ms_per_query')} in batches of 100)"
        )
    missed = [row for row in rows if row["ratio"] < 4]
    status = _met(not missed) + (f" at {', '.join(_fmt(r['docs']) for r in missed)} docs" if missed else "")
    return (f"GPU: our encode >= 4x plain encode ({probe.get('device')}, `{name}`)", text, status)


def _largest(section: Any) -> dict:
    """The entry of the largest size in a section keyed by size ({"50000": {...}, "166780": {...}})."""
    if not isinstance(section, dict) or not section:
        return {}
    sizes = [k for k in section if str(k).isdigit()]
    return section[max(sizes, key=int)] if sizes else section


# Over 60 lines: one row per performance target, in the report's order.
def perf_targets(r: dict) -> list[tuple[str, str, str]]:
    """Rows for the write path, dense search on real embeddings, BM25 freshness and the 1M run."""
    rows: list[tuple[str, str, str]] = []
    write = _largest(r.get("write"))
    rate = _get(write, "new", "vectors_per_s")
    per_size = "; ".join(
        f"{_fmt(int(size))}: {_fmt(_get(w, 'new', 'vectors_per_s'), 0)}/s"
        + (f" vs old settings {_fmt(_get(w, 'old', 'vectors_per_s'), 0)}/s" if _get(w, "old") else "")
        for size, w in sorted((r.get("write") or {}).items(), key=lambda kv: int(kv[0]))
        if isinstance(w, dict) and "new" in w
    )
    rows.append(
        (
            f"7. write path >= 5,000 vectors/s into the store at {_fmt(write.get('size'))} chunks (precomputed "
            "real vectors)",
            f"{per_size or 'n/a'} (new: M={_get(write, 'new', 'settings', 'M')}, "
            f"ef_construction={_get(write, 'new', 'settings', 'ef_construction')}; recall@10 "
            f"{_fmt(write.get('recall_at_10'), 3)} at ef_search {write.get('default_ef_search')})",
            _met(None if rate is None else rate >= 5000),
        )
    )
    dense = r.get("dense-real") or {}
    deployed = dense.get("deployed") or {}
    hnsw, exact = deployed.get("hnsw") or {}, deployed.get("exact") or {}
    p50, recall = hnsw.get("p50_ms"), hnsw.get("recall_at_10")
    rows.append(
        (
            f"8. dense p50 <= 3 ms at {_fmt(deployed.get('chunks'))} chunks, recall@10 >= 0.95 (real MiniLM vectors)",
            f"HNSW p50 {_fmt(p50, 3)} ms at ef_search {dense.get('chosen_ef')}, recall@10 {_fmt(recall, 4)} "
            f"(documents; chunks {_fmt(hnsw.get('chunk_recall_at_10'), 4)}); exact p50 {_fmt(exact.get('p50_ms'), 3)} ms; "
            f"exact faster below ~{_fmt(dense.get('crossover_estimate'))} chunks (setting dense_exact_below "
            f"{_fmt(_get(dense, 'settings', 'dense_exact_below'))})",
            _met(None if p50 is None or recall is None else p50 <= 3 and recall >= 0.95),
        )
    )
    hybrid = deployed.get("hybrid_real_minilm") or {}
    total = _get(hybrid, "total", "p50_ms")
    rows.append(
        (
            f"3b. hybrid p50 <= 50 ms at {_fmt(deployed.get('documents'))} docs on real vectors, MiniLM query "
            "embedding included",
            f"{_fmt(total)} ms (p95 {_fmt(_get(hybrid, 'total', 'p95_ms'))}); split p50 "
            + ", ".join(f"{k} {v}" for k, v in (hybrid.get("parts_p50_ms") or {}).items()),
            _met(None if total is None else total <= 50),
        )
    )
    bm25 = r.get("bm25-update") or {}
    steps = [bm25.get("add_100") or {}, bm25.get("delete_100") or {}]
    after = [step.get("next_search_s") for step in steps]
    diffs = [step.get("max_abs_diff") for step in steps]
    ok = None if None in after or None in diffs else max(after) <= 1.0 and max(diffs) <= 1e-6
    rows.append(
        (
            f"9. BM25 after +100 / -100 docs at {_fmt(bm25.get('chunks'))} chunks: next search <= 1 s, scores = "
            "full rebuild (1e-6)",
            f"next search {_fmt(after[0], 3)} s after adding, {_fmt(after[1], 3)} s after deleting (full rebuild "
            f"{_fmt(steps[0].get('rebuild_s'))} / {_fmt(steps[1].get('rebuild_s'))} s); max abs diff "
            f"{diffs[0]} / {diffs[1]}; top-10 equal {steps[0].get('top10_equal')} / {steps[1].get('top10_equal')}",
            _met(ok),
        )
    )
    big = r.get("million") or {}
    idx = big.get("indexing") or {}
    rss = big.get("peak_rss_mb")
    rows.append(
        (
            "10. 1M chunks through the collection path, measured: peak RSS < 8 GiB",
            f"{_fmt(idx.get('chunks'))} chunks ({_fmt(idx.get('documents'))} docs) indexed in "
            f"{_fmt(idx.get('seconds'), 0)} s (split s: "
            + ", ".join(f"{k[:-2]} {v}" for k, v in (idx.get("split_s") or {}).items())
            + f"); peak RSS {_fmt(rss, 0)} MiB; hybrid p50/p95 {_fmt(_get(big, 'hybrid', 'p50_ms'))}/"
            f"{_fmt(_get(big, 'hybrid', 'p95_ms'))} ms; HNSW p50 {_fmt(_get(big, 'store_query', 'p50_ms'))} ms, "
            f"recall@10 {_fmt(_get(big, 'store_query', 'recall_at_10'), 4)}",
            _met(None if rss is None else rss < 8192),
        )
    )
    return rows


def dense_real_points(r: dict, points: dict) -> None:
    """Add the dense-real section's exact / HNSW p50 per size to the scaling plot's points (the crossover)."""
    dense = r.get("dense-real") or {}
    ef = str(dense.get("chosen_ef"))
    for size, m in (dense.get("per_size") or {}).items():
        row = points.setdefault(int(size), {})
        row["real_exact_p50"] = _get(m, "exact", "p50_ms")
        row["real_hnsw_p50"] = _get(m, "hnsw", ef, "p50_ms")


# Over 60 lines: a linear list of markdown sections, in the report's order.
def perf_sections(r: dict) -> list[str]:
    """Markdown of the write, dense-real, bm25-update and million sections."""
    lines: list[str] = []
    write = r.get("write") or {}
    if write:
        lines += ["", "## 7. Store write path (precomputed real vectors; old vs current HNSW settings)", ""]
        lines += ["| vectors | settings | vectors/s | seconds | slowest call s |", "|---|---|---|---|---|"]
        for size, w in sorted(write.items(), key=lambda kv: int(kv[0])):
            for side in ("old", "new"):
                x = w.get(side) if isinstance(w, dict) else None
                if x:
                    st = x.get("settings", {})
                    lines.append(
                        f"| {_fmt(int(size))} | {side}: M={st.get('M')}, ef_c={st.get('ef_construction')}, "
                        f"sync={st.get('sync_threshold')}, {x.get('method')} | {_fmt(x.get('vectors_per_s'), 0)} | "
                        f"{x.get('seconds')} | {x.get('slowest_call_s')} |"
                    )
        big = _largest(write)
        search = big.get("search") or {}
        if search:
            lines += ["", f"ef_search on {_fmt(big.get('size'))} real vectors (current settings):", ""]
            lines += ["| ef_search | recall@10 | p50 ms | p95 ms |", "|---|---|---|---|"]
            for ef, m in sorted(search.items(), key=lambda kv: int(kv[0])):
                lines.append(f"| {ef} | {m.get('recall_at_10')} | {m.get('p50_ms')} | {m.get('p95_ms')} |")
    dense = r.get("dense-real") or {}
    if dense.get("per_size"):
        ef = str(dense.get("chosen_ef"))
        lines += [
            "",
            f"## 8. Dense search through the collection path on real vectors (chosen ef_search {ef}; "
            f"crossover ~{_fmt(dense.get('crossover_estimate'))} chunks)",
            "",
            "| chunks | exact p50 ms | HNSW p50 ms | HNSW recall@10 (docs) | exact p50, 100-doc pool | HNSW p50, 100-doc pool |",
            "|---|---|---|---|---|---|",
        ]
        for size, m in sorted(dense["per_size"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {_fmt(int(size))} | {_get(m, 'exact', 'p50_ms')} | {_get(m, 'hnsw', ef, 'p50_ms')} | "
                f"{_get(m, 'hnsw', ef, 'recall_at_10')} | {_get(m, 'exact_pool100', 'p50_ms')} | "
                f"{_get(m, 'hnsw_pool100', ef, 'p50_ms')} |"
            )
        d = dense.get("deployed") or {}
        if d.get("hnsw"):
            lines.append(
                f"\nFresh process, {_fmt(d.get('chunks'))} chunks: HNSW p50 {_get(d, 'hnsw', 'p50_ms')} ms "
                f"(recall@10 {_get(d, 'hnsw', 'recall_at_10')}), exact p50 {_get(d, 'exact', 'p50_ms')} ms; hybrid "
                f"with MiniLM query embedding p50 {_get(d, 'hybrid_real_minilm', 'total', 'p50_ms')} ms "
                f"(embedding alone {_get(d, 'hybrid_real_minilm', 'minilm_query_embedding', 'p50_ms')} ms)."
            )
    bm25 = r.get("bm25-update") or {}
    if bm25.get("add_100"):
        lines += ["", f"## 9. BM25 after writes ({_fmt(bm25.get('chunks'))} chunks)", ""]
        lines += [
            "| step | next search s | full rebuild s | ratio | max abs diff | top-10 equal |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("add_100", "delete_100"):
            x = bm25.get(name) or {}
            lines.append(
                f"| {name} | {x.get('next_search_s')} | {x.get('rebuild_s')} | {x.get('ratio_vs_rebuild')} | "
                f"{x.get('max_abs_diff')} | {x.get('top10_equal')} |"
            )
    big = r.get("million") or {}
    if big.get("indexing"):
        i = big["indexing"]
        lines += [
            "",
            f"## 10. {_fmt(i.get('chunks'))} chunks through the collection path",
            "",
            f"{_fmt(i.get('documents'))} documents indexed in {i.get('seconds')} s; split (s): "
            + ", ".join(f"{k[:-2]} {v}" for k, v in (i.get("split_s") or {}).items())
            + f". Peak RSS {big.get('peak_rss_mb')} MiB; on disk {big.get('disk_mb')} MiB. Hybrid k=10 p50/p95 "
            f"{_get(big, 'hybrid', 'p50_ms')}/{_get(big, 'hybrid', 'p95_ms')} ms (split p50: "
            + ", ".join(f"{k} {v}" for k, v in (_get(big, "hybrid", "parts_p50_ms") or {}).items())
            + f"); HNSW p50/p95 {_get(big, 'store_query', 'p50_ms')}/{_get(big, 'store_query', 'p95_ms')} ms, "
            f"recall@10 vs exact {_get(big, 'store_query', 'recall_at_10')}.",
        ]
    return lines


def update_readme(rows: list[tuple[str, str, str]], source: str, readme: Path = README) -> bool:
    """Replace the README's block between the perf-targets markers with ``rows``; False without markers."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return False
    table = "\n".join(
        [
            BEGIN,
            f"Generated from `{source}` by `make bench`; misses included.",
            "",
            "| target | measured | |",
            "|---|---|---|",
        ]
        + [f"| {a} | {b} | {c} |" for a, b, c in rows]
        + [END]
    )
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: table, text), encoding="utf-8")
    return True
