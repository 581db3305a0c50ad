"""Real MiniLM embeddings of real text for the dense benchmarks, computed once and cached on disk.

Corpus text (offline, the repository's ``data/``): the 354 TheoremQA theorem
definitions and the BRIGHT ``query`` / ``reasoning`` / ``gold_answer`` texts of all 12 domains (~500k words),
cut into windows of 40 words with a stride of 20 (overlapping, like a chunker with overlap): ~25k chunks.
Queries: the 800 TheoremQA test questions (not in the corpus).

Sizes above the real chunk count are reached by perturbation, stated here so that figures can be read:
extra vector = normalise(a * v_i + (1 - a) * v_j + noise), v_i and v_j two random real chunk vectors,
a ~ U(0.55, 0.85), noise ~ N(0, 0.015^2) per dimension. Each extra vector then lies between real ones (a
new point of the same manifold, cosine ~0.8 to its source), not on a random sphere: the neighbourhood
structure stays that of embeddings, which is what HNSW settings must be chosen on. ``stats()`` prints the
nearest-neighbour cosines of real and extra vectors side by side.

Cache: ``$DIVER_BENCH_CACHE`` or ``<repo>/.cache/bench`` (git-ignored), keyed by model and texts.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from diver.text.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
WINDOW, STRIDE = 40, 20
SEED = 20261127


def _data_dir() -> Path:
    for candidate in (ROOT / "data", ROOT.parent / "shared" / "data"):
        if (candidate / "theoremqa" / "all_theorems.json").exists():
            return candidate
    raise FileNotFoundError("no offline data: expected data/ (or ../shared/data) with theoremqa/")


def cache_dir() -> Path:
    path = Path(os.environ.get("DIVER_BENCH_CACHE", ROOT / ".cache" / "bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _windows(text: str) -> list[str]:
    words = text.split()
    if len(words) <= WINDOW:
        return [" ".join(words)] if words else []
    return [" ".join(words[s : s + WINDOW]) for s in range(0, len(words) - WINDOW + STRIDE, STRIDE)]


@lru_cache(maxsize=1)
def corpus_texts() -> tuple[str, ...]:
    data = _data_dir()
    theorems = json.loads((data / "theoremqa" / "all_theorems.json").read_text(encoding="utf-8"))
    texts = [f"{name}: {body}" for name, body in theorems.items()]
    bright = data / "bright" / "topics"
    for path in sorted(bright.glob("*.jsonl.gz")) if bright.exists() else []:
        for _, row in read_jsonl(path):
            texts.extend(row[k] for k in ("query", "reasoning", "gold_answer") if isinstance(row.get(k), str))
    return tuple(chunk for text in texts for chunk in _windows(text))


@lru_cache(maxsize=1)
def query_texts() -> tuple[str, ...]:
    rows = json.loads((_data_dir() / "theoremqa" / "theoremqa_test.json").read_text(encoding="utf-8"))
    return tuple(row["Question"] for row in rows)


def _embed(texts: tuple[str, ...], kind: str) -> np.ndarray:
    from diver.config import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings

    digest = hashlib.sha256("\n".join((DEFAULT_EMBEDDING_MODEL, kind, *texts)).encode()).hexdigest()[:16]
    path = cache_dir() / f"minilm-{kind}-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    from diver.index.dense.embedders import build_embedder

    embedder = build_embedder(EmbeddingSettings(cache=False))
    started = time.perf_counter()
    embed = embedder.embed_queries if kind == "queries" else embedder.embed_documents
    vectors = np.asarray(embed(list(texts)), dtype=np.float32)
    print(
        f"embedded {len(texts):,} {kind} with MiniLM in {time.perf_counter() - started:.0f} s (cached: {path})",
        file=sys.stderr,
    )
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, path)
    return vectors


def real_limit() -> int | None:
    """``$DIVER_BENCH_REAL_CHUNKS``: use only the first N real chunks and queries (quick runs and tests
    embed a few hundred instead of ~25k; the full set takes minutes on two cores, once)."""
    value = os.environ.get("DIVER_BENCH_REAL_CHUNKS")
    return int(value) if value else None


def real_corpus_vectors() -> np.ndarray:
    """The real chunk vectors (no perturbation), [~25k, 384] (or ``real_limit()`` rows)."""
    return _real_vectors(real_limit())


@lru_cache(maxsize=2)
def _real_vectors(limit: int | None) -> np.ndarray:
    return _embed(corpus_texts()[:limit], "chunks")


BLOCK = 50_000


def extra_block(block: int, seed: int = SEED) -> np.ndarray:
    """Block ``block`` (0-based) of the perturbed vectors after the real ones: ``BLOCK`` rows, each block
    drawn from its own seed, so any block can be made again alone (a 1M-vector run never holds them all)."""
    return _extra_block(block, seed, real_limit())


@lru_cache(maxsize=2)
def _extra_block(block: int, seed: int, limit: int | None) -> np.ndarray:
    real = _real_vectors(limit)
    rng = np.random.default_rng([seed, block])
    i = rng.integers(0, len(real), BLOCK)
    j = rng.integers(0, len(real), BLOCK)
    a = rng.uniform(0.55, 0.85, BLOCK).astype(np.float32)[:, None]
    mixed = a * real[i] + (1 - a) * real[j] + rng.normal(0, 0.015, (BLOCK, real.shape[1])).astype(np.float32)
    return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


def vector_rows(start: int, stop: int, seed: int = SEED) -> np.ndarray:
    """Rows ``start:stop`` of the endless sequence: the real chunk vectors, then the perturbed blocks."""
    real = real_corpus_vectors()
    parts = []
    if start < len(real):
        parts.append(real[start : min(stop, len(real))])
    position = max(start, len(real))
    while position < stop:
        block, offset = divmod(position - len(real), BLOCK)
        take = min(BLOCK - offset, stop - position)
        parts.append(extra_block(block, seed)[offset : offset + take])
        position += take
    return np.concatenate(parts) if parts else np.zeros((0, real.shape[1]), dtype=np.float32)


def corpus_vectors(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` unit vectors: the real chunk vectors first, then perturbed mixtures of them (module docstring)."""
    return np.ascontiguousarray(vector_rows(0, n, seed), dtype=np.float32)


def query_vectors() -> np.ndarray:
    """The 800 TheoremQA questions embedded as queries, [800, 384] (the first ``real_limit()`` if set)."""
    return _query_vectors(real_limit())


@lru_cache(maxsize=2)
def _query_vectors(limit: int | None) -> np.ndarray:
    return _embed(query_texts()[:limit], "queries")


def stats(n: int = 60_000, sample: int = 300) -> dict:
    """Nearest-neighbour cosine (excluding itself) of real vs extra vectors, and query top-1 cosine."""
    vectors = corpus_vectors(n)
    real_count = len(real_corpus_vectors())
    rng = np.random.default_rng(1)
    out = {"real_chunks": real_count, "n": n}
    for name, rows in (
        ("real", rng.integers(0, real_count, sample)),
        ("extra", rng.integers(real_count, n, sample)),
    ):
        sims = vectors[rows] @ vectors.T
        sims[np.arange(sample), rows] = -1
        out[f"nn_cosine_{name}_median"] = round(float(np.median(sims.max(axis=1))), 3)
    top = query_vectors()[:sample] @ vectors.T
    out["query_top1_cosine_median"] = round(float(np.median(top.max(axis=1))), 3)
    return out


if __name__ == "__main__":
    print(f"{len(corpus_texts()):,} real chunks, {len(query_texts())} queries")
    print(json.dumps(stats(), indent=1))
