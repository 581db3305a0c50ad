"""Issue 13's targets (write path, dense on real embeddings, BM25 updates, 1M chunks, GPU) for the report,
and the README's performance block regenerated from the targets table."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.report import _fmt, _get, _met

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


def perf_targets(r: dict) -> list[tuple[str, str, str]]:
    """Rows for the write path, dense search on real embeddings, BM25 freshness and the 1M run."""
    rows: list[tuple[str, str, str]] = []
    write = r.get("write") or {}
    rate = _get(write, "new", "vectors_per_s")
    rows.append(
        (
            f"7. write path >= 5,000 vectors/s at {_fmt(_get(write, 'size'))} chunks (precomputed vectors)",
            f"{_fmt(rate, 0)} vectors/s (old settings {_fmt(_get(write, 'old', 'vectors_per_s'), 0)}: "
            f"{_fmt(_get(write, 'ratio'))}x)",
            _met(None if rate is None else rate >= 5000),
        )
    )
    dense = r.get("dense-real") or {}
    at = _get(dense, "target") or {}
    p50, recall = at.get("p50_ms"), at.get("recall_at_10")
    rows.append(
        (
            f"8. dense p50 <= 3 ms at {_fmt(at.get('size'))} chunks, recall@10 >= 0.95 (real MiniLM vectors)",
            f"p50 {_fmt(p50, 3)} ms ({at.get('path')}), recall@10 {_fmt(recall, 4)}; exact numpy p50 "
            f"{_fmt(at.get('exact_p50_ms'), 3)} ms; crossover exact/ANN at {_fmt(_get(dense, 'crossover'))} chunks",
            _met(None if p50 is None or recall is None else p50 <= 3 and recall >= 0.95),
        )
    )
    bm25 = r.get("bm25-update") or {}
    after = [_get(bm25, step, "next_search_ms") for step in ("add", "delete")]
    diffs = [_get(bm25, step, "max_abs_diff") for step in ("add", "delete")]
    ok = None if None in after else max(after) <= 1000 and max(diffs) <= 1e-6
    rows.append(
        (
            f"9. BM25 fresh after +100 / -100 docs at {_fmt(_get(bm25, 'chunks'))} chunks: next search <= 1 s, "
            "scores = full rebuild (1e-6)",
            f"next search {_fmt(after[0], 1)} ms after adding, {_fmt(after[1], 1)} ms after deleting; max abs "
            f"diff {_fmt(diffs[0], 9)} / {_fmt(diffs[1], 9)}; full rebuild {_fmt(_get(bm25, 'full_rebuild_s'))} s",
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
            f"{_fmt(idx.get('seconds'), 0)} s; peak RSS {_fmt(rss, 0)} MiB; hybrid p50/p95 "
            f"{_fmt(_get(big, 'hybrid', 'p50_ms'))}/{_fmt(_get(big, 'hybrid', 'p95_ms'))} ms; HNSW recall@10 "
            f"{_fmt(_get(big, 'store_query', 'recall_at_10'), 4)}",
            _met(None if rss is None else rss < 8192),
        )
    )
    return rows


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
