"""report.md and the chart of a run, beside the published BRIGHT rows of the DIVER paper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from diver.datasets import NOT_COMPARABLE
from diver.datasets.bright import DOMAINS

HEADLINE = "nDCG@10"
SUMMARY_METRICS = (
    "nDCG@1",
    "nDCG@5",
    "nDCG@10",
    "nDCG@25",
    "nDCG@50",
    "nDCG@100",
    "Recall@10",
    "Recall@100",
    "MAP@100",
    "MRR",
)

SHORT = {
    "biology": "Bio",
    "earth_science": "Earth",
    "economics": "Econ",
    "psychology": "Psy",
    "robotics": "Rob",
    "stackoverflow": "Stack",
    "sustainable_living": "Sus",
    "leetcode": "Leet",
    "pony": "Pony",
    "aops": "AoPS",
    "theoremqa_questions": "TheoQ",
    "theoremqa_theorems": "TheoT",
}

BM25_BRIGHT = dict(
    zip(
        DOMAINS,
        (18.9, 27.2, 14.9, 12.5, 13.6, 18.4, 15.0, 24.4, 7.9, 6.2, 10.4, 4.9),
        strict=True,
    )
)
"""BM25 on BRIGHT's original queries, nDCG@10 per domain (BRIGHT paper, Su et al. 2024; average 14.5)."""

PUBLISHED: list[tuple[str, float, Mapping[str, float]]] = [
    ("BM25 (BRIGHT paper)", 14.5, BM25_BRIGHT),
    ("DIVER-Retriever-4B", 28.9, {}),
    ("+ QExpand", 33.9, {}),
    ("+ BM25 hybrid", 37.2, {}),
    ("+ rerank (DIVER)", 41.6, {}),
    ("DIVER v2", 45.8, {}),
]
"""Published BRIGHT nDCG@10 rows of the DIVER paper. Per-domain values are given for BM25 only: the DIVER
rows' per-domain values could not be checked offline, so only their overall averages are shown."""


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _stage_rows(metrics: Mapping[str, Any], stages: Sequence[str], domains: Sequence[str]) -> list[str]:
    lines = []
    for stage in stages:
        block = metrics["stages"].get(stage)
        if not block:
            continue
        cells = [pct(block["domains"].get(d, {}).get("mean", {}).get(HEADLINE)) for d in domains]
        lines.append(
            f"| {stage} (ours) | " + " | ".join(cells) + f" | {pct(block['average'].get(HEADLINE))} |"
        )
    return lines


# Over 60 lines: a linear list of markdown sections, one per block of the report.
def render_report(metrics: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """The markdown report: headline table per stage and domain, summary metrics, published rows, notes."""
    comparable = metrics["comparable_to_bright"]
    stages = [s for s in metrics["stage_order"] if s in metrics["stages"]]
    domains = metrics["domains"]
    banner = (
        ""
        if comparable
        else f"\n> **{NOT_COMPARABLE}.** Offline benchmark built from vendored files: "
        "a different, much smaller corpus than BRIGHT's.\n"
    )
    out = [f"# DIVER eval: {metrics['benchmark']}", banner]
    out.append(
        f"Embedder: `{manifest.get('models', {}).get('embedder', '?')}` · queries: {metrics['query_origin']}"
        f" · top {metrics['top_k']} kept after removing excluded ids · {metrics['qrels_field']} qrels\n"
    )
    fusion = manifest.get("fusion") or {}
    if fusion:
        weights = ", ".join(f"{d} {f.get('w_dense')}" for d, f in fusion.items())
        sources = sorted({str(f.get("source")) for f in fusion.values()})
        out.append(f"Hybrid fusion w_dense: {weights} ({'; '.join(sources)})\n")
    title = f"## {HEADLINE} ×100 per stage and domain" + ("" if comparable else f" ({NOT_COMPARABLE})")
    out += [
        title,
        "",
        "| run | " + " | ".join(SHORT.get(d, d) for d in domains) + " | Avg |",
        "|---|" + "---|" * (len(domains) + 1),
    ]
    out += _stage_rows(metrics, stages, domains)
    out += [
        "",
        "## All metrics ×100, averaged over domains" + ("" if comparable else f" ({NOT_COMPARABLE})"),
        "",
        "| stage | " + " | ".join(SUMMARY_METRICS) + " | queries | seconds |",
        "|---|" + "---|" * (len(SUMMARY_METRICS) + 2),
    ]
    for stage in stages:
        block = metrics["stages"][stage]
        n = sum(d["queries"] for d in block["domains"].values())
        secs = sum(d.get("seconds", 0.0) for d in block["domains"].values())
        out.append(
            f"| {stage} | "
            + " | ".join(pct(block["average"].get(m)) for m in SUMMARY_METRICS)
            + f" | {n} | {secs:.1f} |"
        )
    out += ["", _published_section(comparable, domains)]
    notes = [n for d in metrics.get("notes", {}).values() for n in d]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes[:50]]
        if len(notes) > 50:
            out.append(f"- … {len(notes) - 50} more in metrics.json")
    out += ["", "## Timing and reuse", ""]
    for domain, info in manifest.get("collections", {}).items():
        how = "reused" if info.get("reused") else f"indexed in {info.get('index_seconds', 0):.1f} s"
        out.append(
            f"- collection `{info.get('collection')}` ({domain}): {info.get('documents')} documents, {how}"
        )
    for key, value in manifest.get("reused", {}).items():
        if key != "collections":
            out.append(f"- {key.replace('_', ' ')}: {value}")
    out.append(f"- wall time of this invocation: {manifest.get('wall_seconds', 0):.1f} s")
    return "\n".join(out) + "\n"


def _published_section(comparable: bool, domains: Sequence[str]) -> str:
    all_domains = list(DOMAINS)
    head = "## Published BRIGHT rows (DIVER paper), nDCG@10"
    if not comparable:
        head += f" — for orientation only, {NOT_COMPARABLE}"
    lines = [
        head,
        "",
        "| published | " + " | ".join(SHORT[d] for d in all_domains) + " | Avg |",
        "|---|" + "---|" * (len(all_domains) + 1),
    ]
    for name, avg, per_domain in PUBLISHED:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{per_domain[d]:.1f}" if d in per_domain else "–" for d in all_domains)
            + f" | {avg:.1f} |"
        )
    lines += [
        "",
        "Per-domain values are shown for the BM25 row only (BRIGHT paper); the DIVER rows are the paper's "
        "overall averages (their per-domain values were not verified here).",
        "",
        "Our bm25 row approximates BRIGHT's: same k1=0.9, b=0.4, but bm25s + PyStemmer (Snowball English) "
        "tokens over chunks rolled up by MAX, where BRIGHT scores whole documents with pyserini's Lucene "
        "English analyzer; the tokens differ, so the rows are not identical.",
    ]
    if comparable and set(domains) != set(all_domains):
        lines.append(
            f"Our Avg covers {len(domains)} of {len(all_domains)} domains: compare per domain, not Avg."
        )
    return "\n".join(lines) + "\n"


def write_chart(metrics: Mapping[str, Any], path: Path) -> None:
    """Grouped bars of nDCG@10 per domain (and the average), one bar per stage."""
    from diver.errors import require

    matplotlib = require("matplotlib", "eval", "Drawing the report chart")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in metrics["stage_order"] if s in metrics["stages"]]
    domains = list(metrics["domains"])
    groups = [SHORT.get(d, d) for d in domains] + ["Avg"]
    width = 0.8 / max(1, len(stages))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 2), 4.5))
    for i, stage in enumerate(stages):
        block = metrics["stages"][stage]
        values = [100 * block["domains"][d]["mean"].get(HEADLINE, 0.0) for d in domains]
        values.append(100 * block["average"].get(HEADLINE, 0.0))
        xs = [g + (i - (len(stages) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width, label=stage)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    if metrics["comparable_to_bright"]:
        published = [BM25_BRIGHT.get(d, float("nan")) for d in domains] + [
            14.5 if set(domains) == set(DOMAINS) else float("nan")
        ]
        ax.scatter(
            range(len(groups)),
            published,
            marker="_",
            s=600,
            color="black",
            zorder=3,
            label="BM25 (BRIGHT paper)",
        )
    if metrics["comparable_to_bright"] and set(domains) == set(DOMAINS):
        for name, avg, _ in PUBLISHED:
            ax.axhline(avg, linestyle=":", linewidth=0.8, color="grey")
            ax.text(len(groups) - 0.5, avg, f" {name} {avg}", fontsize=6, va="center", color="grey")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("nDCG@10 ×100")
    title = f"DIVER eval — {metrics['benchmark']}"
    if not metrics["comparable_to_bright"]:
        title += f"\n{NOT_COMPARABLE}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def console_table(metrics: Mapping[str, Any]) -> str:
    """A plain-text table for the terminal."""
    stages = [s for s in metrics["stage_order"] if s in metrics["stages"]]
    domains = list(metrics["domains"])
    cols = [SHORT.get(d, d) for d in domains] + ["Avg", "R@100", "MRR"]  # Avg/R@100/MRR: domain means
    lines = []
    if not metrics["comparable_to_bright"]:
        lines.append(f"{metrics['benchmark']}: {NOT_COMPARABLE}")
    widths = [max(8, len(c) + 2) for c in cols]
    lines.append(f"{'nDCG@10 x100':<14}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)))
    for stage in stages:
        block = metrics["stages"][stage]
        cells = [pct(block["domains"][d]["mean"].get(HEADLINE)) for d in domains]
        cells += [
            pct(block["average"].get(HEADLINE)),
            pct(block["average"].get("Recall@100")),
            pct(block["average"].get("MRR")),
        ]
        lines.append(f"{stage:<14}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)
