"""Deterministic synthetic corpora: Zipf-distributed vocabulary taken from real offline text.

The vocabulary and its frequency ranks come from the TheoremQA theorem texts and the BRIGHT query texts
shipped in ``data/``. Each document has a topic; 75% of its words come from the global Zipf law, 25% from
its topic's own Zipf law over a fixed random subset of mid-frequency words, so queries drawn the same way
have real lexical neighbours. Batches are generated from ``(seed, batch index)`` alone, so a corpus of a
million documents streams batch by batch and never sits in memory as Python strings.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from diver.text.jsonl import read_jsonl

DATA = Path(__file__).resolve().parent.parent / "data"
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
ZIPF_S = 1.07
TOPICS = 1000
TOPIC_WORDS = 300
TOPIC_SHARE = 0.25
DOC_WORDS = (100, 300)
QUERY_WORDS = (8, 300)


def real_texts(data_dir: Path = DATA) -> Iterator[tuple[str, str]]:
    """(kind, text): TheoremQA theorem texts, BRIGHT queries and their reasoning / gold-answer texts."""
    theorems = json.loads((data_dir / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    yield from (("theorem", f"{name}\n{text}") for name, text in theorems.items())
    for path in sorted((data_dir / "bright" / "topics").glob("*.jsonl.gz")):
        for _, row in read_jsonl(path):
            yield "query", row["query"]
            for field in ("reasoning", "gold_answer"):
                if isinstance(row.get(field), str):
                    yield "answer", row[field]


@lru_cache(maxsize=2)
def _real_stats(data_dir: Path = DATA) -> tuple[tuple[str, ...], tuple[int, ...]]:
    counts: Counter[str] = Counter()
    query_lengths: list[int] = []
    for kind, text in real_texts(data_dir):
        words = WORD.findall(text.lower())
        counts.update(words)
        if kind == "query":
            query_lengths.append(len(words))
    vocab = tuple(w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return vocab, tuple(query_lengths)


@dataclass(frozen=True)
class SyntheticCorpus:
    """``size`` documents ``doc-0000000``..; batches and queries are pure functions of the seed."""

    size: int
    seed: int = 13
    batch: int = 10_000

    def __post_init__(self) -> None:
        vocab, query_lengths = _real_stats()
        object.__setattr__(self, "_vocab", list(vocab))
        object.__setattr__(self, "_query_lengths", np.array(query_lengths, dtype=np.int64))
        ranks = np.arange(1, len(vocab) + 1, dtype=np.float64)
        cdf = np.cumsum(1.0 / ranks**ZIPF_S)
        object.__setattr__(self, "_global_cdf", cdf / cdf[-1])
        topic_cdf = np.cumsum(1.0 / np.arange(1, TOPIC_WORDS + 1, dtype=np.float64) ** ZIPF_S)
        object.__setattr__(self, "_topic_cdf", topic_cdf / topic_cdf[-1])
        rng = np.random.default_rng([self.seed, 0xC0FFEE])
        mid = np.arange(min(200, len(vocab) // 10), len(vocab))  # topics avoid the function words
        words = np.stack([rng.choice(mid, TOPIC_WORDS, replace=False) for _ in range(TOPICS)])
        object.__setattr__(self, "_topic_words", words)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocab)  # type: ignore[attr-defined]

    def doc_id(self, i: int) -> str:
        return f"doc-{i:07d}"

    def _words(self, rng: np.random.Generator, lengths: np.ndarray, topics: np.ndarray) -> list[str]:
        total = int(lengths.sum())
        ids = np.searchsorted(self._global_cdf, rng.random(total))  # type: ignore[attr-defined]
        topical = rng.random(total) < TOPIC_SHARE
        owner = np.repeat(topics, lengths)[topical]
        picks = np.searchsorted(self._topic_cdf, rng.random(int(topical.sum())))  # type: ignore[attr-defined]
        ids[topical] = self._topic_words[owner, picks]  # type: ignore[attr-defined]
        vocab = self._vocab  # type: ignore[attr-defined]
        words = [vocab[i] for i in ids.tolist()]
        out, start = [], 0
        for length in lengths.tolist():
            out.append(" ".join(words[start : start + length]))
            start += length
        return out

    def texts(self, index: int) -> list[str]:
        """The texts of batch ``index`` (documents ``index*batch`` .. up to ``size``)."""
        start = index * self.batch
        count = max(0, min(self.batch, self.size - start))
        rng = np.random.default_rng([self.seed, 1, index])
        lengths = rng.integers(DOC_WORDS[0], DOC_WORDS[1] + 1, count)
        topics = rng.integers(0, TOPICS, count)
        return self._words(rng, lengths, topics)

    def batches(self) -> Iterator[list[str]]:
        for index in range((self.size + self.batch - 1) // self.batch):
            yield self.texts(index)

    def documents(self) -> Iterator[tuple[str, str]]:
        """(id, text) pairs, streamed."""
        for index, texts in enumerate(self.batches()):
            for offset, text in enumerate(texts):
                yield self.doc_id(index * self.batch + offset), text

    def queries(self, count: int) -> list[str]:
        """Queries drawn like documents, with lengths drawn from real BRIGHT query lengths."""
        rng = np.random.default_rng([self.seed, 2, count])
        pool = self._query_lengths  # type: ignore[attr-defined]
        lengths = np.clip(rng.choice(pool, count), QUERY_WORDS[0], QUERY_WORDS[1])
        topics = rng.integers(0, TOPICS, count)
        return self._words(rng, lengths, topics)


def clustered_vectors(
    count: int, dim: int = 384, seed: int = 13, clusters: int = 1000, spread: float = 1.0, start: int = 0
) -> np.ndarray:
    """Unit vectors around ``clusters`` random centres (cosine to a same-cluster neighbour ~ 1/(1+spread^2)).

    Row ``i`` depends only on ``(seed, i // 10000)``, so any slice can be regenerated on its own.
    """
    centres = np.random.default_rng([seed, 3]).standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((count, dim), dtype=np.float32)
    block = 10_000
    first = start // block
    for b in range(first, (start + count + block - 1) // block):
        rng = np.random.default_rng([seed, 4, b])
        assign = rng.integers(0, clusters, block)
        noise = rng.standard_normal((block, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        rows = centres[assign] + noise
        lo, hi = max(start, b * block), min(start + count, (b + 1) * block)
        out[lo - start : hi - start] = rows[lo - b * block : hi - b * block]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def query_vectors(count: int, dim: int = 384, seed: int = 13, clusters: int = 1000) -> np.ndarray:
    """Queries from the same distribution as :func:`clustered_vectors` (a disjoint seed stream)."""
    return clustered_vectors(count, dim, seed=seed, clusters=clusters, start=10**9)
