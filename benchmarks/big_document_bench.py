"""One big document (issue 21, item 7): the first search after indexing a single 1-20 MB document.

That first search builds the collection's BM25 segment from the catalog. It used to cut each chunk's
text with ``substr(d.text, ...)`` in SQL, which re-reads the whole text per chunk: quadratic in the
document's size (546 s at 20 MB). The baseline column reruns that old SQL on the same catalog; the
current column is ``read_segment`` as shipped (two scans, chunk texts sliced in Python).

    .venv/bin/python -m benchmarks.big_document_bench                  # 1.2, 4.7, 20 MB; baseline to 4.7 MB
    .venv/bin/python -m benchmarks.big_document_bench --sizes 20 --baseline-max 20   # the old path at 20 MB

Rows are printed as a table and as JSON (``--json``); nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = ("theorem prime graph triangle proof lemma integer vector matrix entropy inequality bound "
         "sequence series limit derivative integral manifold group ring field").split()  # fmt: skip
OLD_SQL = ('SELECT d.seq, d.id, c.idx, substr(d.text, c.start + 1, c."end" - c.start) FROM documents d '
           "JOIN chunks c ON c.doc_id = d.id WHERE d.seq > ? ORDER BY d.seq, c.idx")  # fmt: skip


def big_text(megabytes: float) -> str:
    """Deterministic prose of about ``megabytes`` MB (with some non-ASCII words: offsets are characters)."""
    words: list[str] = []
    size, i = 0, 0
    target = int(megabytes * 1_000_000)
    while size < target:
        word = WORDS[(i * 7919) % len(WORDS)] + ("é" if i % 13 == 0 else "")
        words.append(word)
        size += len(word.encode("utf-8")) + 1
        i += 1
    return " ".join(words)


def measure(megabytes: float, baseline: bool) -> dict[str, Any]:
    from diver.config import load_settings
    from diver.index.engine import Engine
    from diver.index.lexical.store import read_segment
    from diver.text.documents import Document

    text = big_text(megabytes)
    with tempfile.TemporaryDirectory(prefix="diver-bigdoc-") as tmp:
        settings = load_settings(data_dir=Path(tmp), embedding={"provider": "hashing"},
                                 limits={"max_document_bytes": 64_000_000})  # fmt: skip
        with Engine(settings) as engine:
            notes = engine.collection("big", create=True)
            started = time.perf_counter()
            notes.upsert([Document(id="big", text=text)])
            upsert_s = time.perf_counter() - started
            started = time.perf_counter()
            hits = notes.search("prime entropy", k=3, mode="bm25").hits
            first_search_s = time.perf_counter() - started
            catalog = next(Path(tmp).rglob("catalog.sqlite"))
        row: dict[str, Any] = {
            "document_mb": round(len(text.encode("utf-8")) / 1e6, 2),
            "upsert_s": round(upsert_s, 2),
            "first_bm25_search_s": round(first_search_s, 2),
            "hits": len(hits),
        }
        db = sqlite3.connect(str(catalog))
        try:
            row["chunks"] = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            started = time.perf_counter()
            segment = read_segment(db, 0, settings.bm25)
            row["read_segment_s"] = round(time.perf_counter() - started, 6)
            assert segment is not None
            if baseline:
                started = time.perf_counter()
                for _ in db.execute(OLD_SQL, (0,)):
                    pass
                row["baseline_substr_sql_s"] = round(time.perf_counter() - started, 6)
                row["baseline_over_current"] = round(row["baseline_substr_sql_s"] / max(row["read_segment_s"], 1e-6), 1)
        finally:
            db.close()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.big_document_bench", description=__doc__)
    parser.add_argument("--sizes", default="1.2,4.7,20", help="document sizes in MB, comma-separated")
    parser.add_argument("--baseline-max", type=float, default=4.7,
                        help="run the old substr SQL only up to this size (it took 546 s at 20 MB)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args(argv)
    rows = [measure(float(s), float(s) <= args.baseline_max) for s in args.sizes.split(",")]
    print("| document MB | chunks | upsert s | first bm25 search s | read_segment s (current) | "
          "old substr SQL s (baseline) | baseline / current |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['document_mb']} | {r['chunks']} | {r['upsert_s']} | {r['first_bm25_search_s']} | "
              f"{r['read_segment_s']} | {r.get('baseline_substr_sql_s', 'not run')} | "
              f"{r.get('baseline_over_current', '-')} |")  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
