"""BM25 over chunk texts: bm25s tokenization (PyStemmer stemming, stopwords) or Lucene's English analysis
(``bm25.analyzer``), and two scorings.

* classic (default): bm25s' Lucene BM25 (``idf = ln(1 + (N - df + 0.5) / (df + 0.5))``), ``k1=0.9, b=0.4`` as in BRIGHT;
  equal to ``bm25s.BM25(method="lucene").get_scores`` (tested), built without holding Python token lists.
* query-side: the query's term frequencies pass through the BM25 saturation too, exactly as BRIGHT's
  reference (gensim ``LuceneBM25Model`` applied to documents AND query, dot product):
  ``w(t, x) = idf(t) * tf / (tf + k1 * (1 - b + b * len(x) / avgdl))`` with ``idf = ln(N + 1) - ln(df + 0.5)``.

Incremental updates (issue 13). The index holds raw term frequencies and row lengths in immutable
segments (``diver.index.lexical.segments``): one large base and small deltas of added rows, deleted rows as
per-segment masks. idf and the length norm depend on N, df and avgdl, which every write changes, so
storing per-(row, term) weights (format 1) forced a full rebuild (28 s at 167k chunks) after any write.
Here the GLOBAL statistics are computed over the live rows of all segments when the index is made:
N and the length total are sums, df is the per-segment df minus the deleted rows' postings, and each
row's norm ``k1 * (1 - b + b * len / avgdl)`` is one O(rows) array. A query looks its terms up in each
segment, sums their live df, and the kernel computes ``idf * saturation[p]`` per posting, where
``saturation = tf / (tf + norm[row])`` is computed once per index (it depends on avgdl); an updated index
and a from-scratch build compute them alike, so their scores are equal bit for bit (the same rows in the
same order), and the parity with bm25s and gensim holds to float32 rounding. A term whose every posting is deleted is unknown, as after a rebuild.

Scoring a query is a sum over a few sparse columns per segment, then a MAX roll-up of rows to
documents. With numba installed (extra ``bench``) the sum is one compiled pass over the postings (3x
faster than the ``np.bincount`` fallback, which gives the same scores) and it is compiled when an index
is built or loaded, never on the first query.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from diver.config import BM25Settings
from diver.index.lexical.segments import (
    Postings,
    build_postings,
    load_postings,
    merge_postings,
    save_postings,
)
from diver.text.lucene_english import LuceneEnglishAnalyzer

log = logging.getLogger(__name__)
_kernels: dict[str, object] = {}
_kernels_lock = threading.Lock()


def _accumulate_kernel(  # pragma: no cover - numba
    indptr: np.ndarray,
    indices: np.ndarray,
    saturation: np.ndarray,
    terms: np.ndarray,
    idf: np.ndarray,
    weights: np.ndarray,
    offset: int,
    out: np.ndarray,
) -> None:
    for j in range(terms.shape[0]):
        weight = weights[j]
        term_idf = idf[j]
        for p in range(indptr[terms[j]], indptr[terms[j] + 1]):
            out[offset + indices[p]] += weight * (term_idf * saturation[p])


def _numba_kernels() -> dict[str, object]:
    """The compiled accumulate kernel, or {"missing": True} without numba. Compiled once per process."""
    if _kernels:
        return _kernels
    with _kernels_lock:
        if _kernels:
            return _kernels
        try:
            import numba
        except ImportError:  # optional: the numpy path gives the same scores
            _kernels["missing"] = True
            return _kernels
        try:
            accumulate = numba.njit(nogil=True, cache=True)(_accumulate_kernel)
        except RuntimeError:  # no writable cache location: compile per process
            accumulate = numba.njit(nogil=True)(_accumulate_kernel)
        for writeable in (True, False):  # loaded segments are read-only memory maps: compile both
            indptr, indices = np.zeros(2, np.int64), np.zeros(1, np.int32)
            indices.flags.writeable = writeable
            one = np.ones(1, np.float32)
            accumulate(indptr, indices, one, np.zeros(1, np.int64), one, one, 0, np.zeros(1))
        _kernels["accumulate"] = accumulate
        return _kernels


def warm_kernels() -> bool:
    """Compile the numba kernel now (at start-up, not on the first query); True when numba is available."""
    return "accumulate" in _numba_kernels()


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first (ties in any order).

    A threshold from a strided sample keeps ``argpartition`` to a few thousand candidates instead of
    every row (about 10x faster at 100k rows); it falls back to the full partition when the guess is short.
    """
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, np.int64)
    candidates = None
    if n >= 16 * k and n >= 4096:
        stride = 16
        sample = scores[::stride]
        want = min(len(sample) - 1, 2 * (k // stride) + 8)
        threshold = np.partition(sample, len(sample) - want)[len(sample) - want]
        found = np.flatnonzero(scores >= threshold)
        if len(found) >= k:
            candidates = found
    if candidates is None:
        candidates = np.arange(n)
    values = scores[candidates]
    if k < len(candidates):
        keep = np.argpartition(values, len(values) - k)[len(values) - k :]
        candidates, values = candidates[keep], values[keep]
    return candidates[np.argsort(-values, kind="stable")].astype(np.int64)


class BM25Tokenizer:
    """The terms of texts under ``settings.analyzer``: bm25s' pipeline (lower-case word tokens, stopwords
    removed, PyStemmer) or Lucene's English analysis (``diver.text.lucene_english``, BRIGHT's tokens)."""

    def __init__(self, settings: BM25Settings) -> None:
        self.analyzer = settings.analyzer
        self._stopwords: str | list[str] = settings.stopwords or []
        self._stemmer = Stemmer.Stemmer(settings.stemmer) if settings.stemmer else None
        self._lucene = LuceneEnglishAnalyzer() if settings.analyzer == "lucene_english" else None

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        if not texts:
            return []
        if self._lucene is not None:
            return self._lucene.tokenize(texts)
        tokens: list[list[str]] = bm25s.tokenize(
            list(texts),
            stopwords=self._stopwords,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )
        return tokens


class LexicalIndex:
    """BM25 over the rows of its segments, in order; ``dead[s]`` masks deleted rows of segment ``s``.

    Immutable: ``with_changes`` returns a new index sharing the unchanged segments (searches running on
    the old one are undisturbed). Deleted rows score 0."""

    def __init__(
        self,
        settings: BM25Settings,
        segments: Sequence[Postings],
        dead: Sequence[np.ndarray | None] | None = None,
        live_df: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.settings = settings
        self.tokenizer = BM25Tokenizer(settings)
        self.segments = tuple(segments)
        self.dead = tuple(dead) if dead is not None else (None,) * len(self.segments)
        if live_df is None:
            live_df = [_live_df(p, d) for p, d in zip(self.segments, self.dead, strict=True)]
        self.live_df = tuple(live_df)
        sizes = [p.num_rows for p in self.segments]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.num_rows = int(self.offsets[-1])
        live_lengths = [
            p.lengths if d is None else p.lengths[~d] for p, d in zip(self.segments, self.dead, strict=True)
        ]
        self.num_live = sum(len(x) for x in live_lengths)
        total = sum(int(x.sum(dtype=np.int64)) for x in live_lengths)
        self.avgdl = total / self.num_live if total > 0 else 1.0  # == lengths.mean() of a rebuild: integers
        k1, b = settings.k1, settings.b
        self.norms = tuple(
            (k1 * (1 - b + b * p.lengths.astype(np.float64) / self.avgdl)).astype(np.float32)
            for p in self.segments
        )
        # tf / (tf + norm) per posting, once per index (O(postings), ~50 ms at 167k chunks): a query then
        # costs what format 1's precomputed weights cost (the norm gather and division per posting at
        # query time measured 1.6x slower)
        self.saturation: tuple[np.ndarray, ...] = tuple(
            (p.tf / (p.tf + norm[p.indices])).astype(np.float32)
            for p, norm in zip(self.segments, self.norms, strict=True)
        )
        dead_rows = [
            np.flatnonzero(d) + o for d, o in zip(self.dead, self.offsets, strict=False) if d is not None
        ]
        self.dead_rows = np.concatenate(dead_rows) if dead_rows else np.zeros(0, np.int64)
        warm_kernels()

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, texts: Sequence[str], settings: BM25Settings) -> LexicalIndex:
        return cls.build_streaming([texts], settings)

    @classmethod
    def build_streaming(cls, batches: Iterable[Sequence[str]], settings: BM25Settings) -> LexicalIndex:
        """Build from batches of row texts, holding only numpy arrays of (row, term, tf) in memory."""
        return cls(settings, [build_postings(batches, BM25Tokenizer(settings).tokenize)])

    def with_changes(
        self, added: Postings | None = None, deleted_rows: np.ndarray | None = None
    ) -> LexicalIndex:
        """A new index: ``added`` rows appended as a segment, ``deleted_rows`` (global row numbers) masked."""
        dead, live_df = list(self.dead), list(self.live_df)
        if deleted_rows is not None and len(deleted_rows):
            deleted_rows = np.unique(np.asarray(deleted_rows, dtype=np.int64))
            segment_of = np.searchsorted(self.offsets, deleted_rows, side="right") - 1
            for s in np.unique(segment_of).tolist():
                postings = self.segments[s]
                newly = np.zeros(postings.num_rows, dtype=bool)
                newly[deleted_rows[segment_of == s] - self.offsets[s]] = True
                if dead[s] is not None:
                    newly &= ~dead[s]
                    dead[s] = dead[s] | newly
                else:
                    dead[s] = newly
                live_df[s] = live_df[s] - _postings_per_term(postings, newly)
        segments = list(self.segments)
        if added is not None and added.num_rows:
            segments.append(added)
            dead.append(None)
            live_df.append(added.df)
        return LexicalIndex(self.settings, segments, dead, live_df)

    def merged(self) -> Postings:
        """The live rows as one segment (deleted rows dropped, terms renumbered)."""
        if len(self.segments) == 1 and self.dead[0] is None:
            return self.segments[0]
        return merge_postings(list(zip(self.segments, self.dead, strict=True)))

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.segments) + sum(x.nbytes for x in self.saturation)

    # -- scoring ----------------------------------------------------------------------------------
    def query_terms(self, query: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The query's known terms (live df > 0 in some segment), their idf (float32) and query weights."""
        tokens = self.tokenizer.tokenize([query])[0]
        counts = Counter(tokens)
        df = np.zeros(len(counts), dtype=np.int64)
        for postings, live_df in zip(self.segments, self.live_df, strict=True):
            for j, term in enumerate(counts):
                local = postings.vocab.get(term)
                if local is not None:
                    df[j] += live_df[local]
        known = [term for term, d in zip(counts, df.tolist(), strict=True) if d > 0]
        if not known:
            return [], np.zeros(0, np.float32), np.zeros(0, np.float32)
        df = df[df > 0].astype(np.float64)
        tf = np.fromiter((counts[t] for t in known), dtype=np.float64, count=len(known))
        n, k1, b = self.num_live, self.settings.k1, self.settings.b
        if not self.settings.query_side:  # bm25s / Lucene
            idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
            return known, idf, tf.astype(np.float32)  # bm25s sums a repeated query term once per occurrence
        idf = (np.log(n + 1.0) - np.log(df + 0.5)).astype(np.float32)  # gensim LuceneBM25Model
        norm = k1 * (1 - b + b * tf.sum() / self.avgdl)
        return known, idf, (idf * tf / (tf + norm)).astype(np.float32)

    def score(self, query: str) -> np.ndarray:
        """BM25 score of every row for one query (float32, length ``num_rows``; deleted rows 0)."""
        terms, idf, weights = self.query_terms(query)
        if not terms:
            return np.zeros(self.num_rows, dtype=np.float32)
        accumulate = _numba_kernels().get("accumulate")
        out = np.zeros(self.num_rows, dtype=np.float64)
        for s, postings in enumerate(self.segments):
            found = [(j, postings.vocab[t]) for j, t in enumerate(terms) if t in postings.vocab]
            if not found:
                continue
            which = np.fromiter((j for j, _ in found), dtype=np.int64, count=len(found))
            local = np.fromiter((t for _, t in found), dtype=np.int64, count=len(found))
            args = (
                postings.indptr,
                postings.indices,
                self.saturation[s],
                local,
                idf[which],
                weights[which],
            )
            if accumulate is not None:
                accumulate(*args, int(self.offsets[s]), out)  # type: ignore[operator]
            else:
                _accumulate_numpy(*args, out[self.offsets[s] : self.offsets[s + 1]])
        scores = out.astype(np.float32)
        scores[self.dead_rows] = 0.0
        return scores

    # -- persistence (one segment; collections keep several, see ``diver.index.lexical.store``) -----------
    def save(self, directory: Path) -> None:
        save_postings(self.merged(), directory, self.settings)

    @classmethod
    def load(cls, directory: Path, settings: BM25Settings) -> LexicalIndex:
        return cls(settings, [load_postings(directory, settings)])


def _accumulate_numpy(
    indptr: np.ndarray,
    indices: np.ndarray,
    saturation: np.ndarray,
    terms: np.ndarray,
    idf: np.ndarray,
    weights: np.ndarray,
    out: np.ndarray,
) -> None:
    """The kernel's sums with numpy: the same float32 operations in the same order per row."""
    starts, ends = indptr[terms], indptr[terms + 1]
    rows = np.concatenate([indices[s:e] for s, e in zip(starts, ends, strict=True)])
    values = np.concatenate(
        [w * (i * saturation[s:e]) for s, e, i, w in zip(starts, ends, idf, weights, strict=True)]
    )
    out += np.bincount(rows, weights=values, minlength=len(out))


def _postings_per_term(postings: Postings, rows: np.ndarray) -> np.ndarray:
    """How many postings of each term fall in the masked ``rows`` (their df share)."""
    positions = np.flatnonzero(rows[postings.indices])
    return np.bincount(postings.term_of_postings(positions), minlength=len(postings.terms))


def _live_df(postings: Postings, dead: np.ndarray | None) -> np.ndarray:
    return postings.df if dead is None else postings.df - _postings_per_term(postings, dead)
