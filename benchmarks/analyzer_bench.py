"""BM25 analyzers side by side: bm25s' tokenizer (the default) vs Lucene's English analysis in Python
(``bm25.analyzer="lucene_english"``), on the offline TheoremQA theorems and every BRIGHT query.

    .venv/bin/python -m benchmarks.analyzer_bench [--repeat 3]

Prints characters per second of each (cold caches: the analyzer's per-piece and stem caches are cleared
before every pass; the best of ``--repeat`` passes) and their ratio. No target: it says what
``lucene_english`` costs at indexing and query time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

from diver.config import BM25Settings
from diver.index.lexical.bm25 import BM25Tokenizer

DATA = Path(__file__).resolve().parents[1] / "data"


def texts() -> list[str]:
    theorems = json.loads((DATA / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    out = [f"{name}\n{text}" for name, text in theorems.items()]
    for path in sorted((DATA / "bright" / "topics").glob("topics.bright-*-original.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            out += [json.loads(line)["query"] for line in handle]
    return out


def _clear_caches() -> None:
    from diver.text import lucene_english, lucene_porter

    lucene_english._analyze_piece.cache_clear()
    lucene_english._filtered.cache_clear()
    lucene_porter.porter_stem.cache_clear()


def compare(sample: list[str], repeat: int = 3) -> dict[str, Any]:
    chars = sum(map(len, sample))
    result: dict[str, Any] = {"texts": len(sample), "chars": chars}
    for analyzer in ("bm25s", "lucene_english"):
        tokenizer = BM25Tokenizer(BM25Settings(analyzer=analyzer))  # type: ignore[arg-type]
        best, terms = float("inf"), 0
        for _ in range(repeat):
            _clear_caches()
            started = time.perf_counter()
            terms = sum(len(t) for t in tokenizer.tokenize(sample))
            best = min(best, time.perf_counter() - started)
        result[analyzer] = {"seconds": round(best, 3), "chars_per_s": round(chars / best), "terms": terms}
    result["lucene_over_bm25s_time"] = round(result["lucene_english"]["seconds"] / result["bm25s"]["seconds"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    result = compare(texts(), args.repeat)
    print(json.dumps(result, indent=1))
    for analyzer in ("bm25s", "lucene_english"):
        row = result[analyzer]
        print(f"{analyzer:15s} {row['chars_per_s'] / 1e6:5.2f} M chars/s  {row['terms']:,} terms")
    print(f"lucene_english takes {result['lucene_over_bm25s_time']}x bm25s' time on {result['chars']:,} characters")


if __name__ == "__main__":
    main()
