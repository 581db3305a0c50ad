"""Immutable BM25 segments: raw term frequencies and row lengths, never weights.

A segment is a CSC matrix of term frequencies (postings of one term: its rows, ascending, and the
term's count in each) plus the token count of every row, over its own vocabulary. Nothing in it depends
on the rest of the index: idf (N, df) and the length norm (avgdl) are global statistics that change with
every write, so ``diver.index.lexical.bm25.LexicalIndex`` computes them across its live segments when it is built
or changed and applies them at query time. Adding rows is a new small segment; deleting rows is a mask
(``LexicalIndex`` subtracts their df and lengths); ``merge_postings`` folds segments into one, dropping
deleted rows, with the same row order, so the scores stay those of a from-scratch build.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diver.config import BM25Settings
from diver.errors import CorruptIndex

FORMAT_VERSION = 2  # 1: per-(row, term) weights with idf and avgdl baked in


@dataclass(frozen=True, eq=False)
class Postings:
    """One segment: ``terms[t]`` occurs ``tf[p]`` times in row ``indices[p]`` for p in indptr[t]..indptr[t+1]."""

    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    indices: np.ndarray  # int32 rows, ascending within a term
    tf: np.ndarray  # float32
    lengths: np.ndarray  # int32 tokens of each row
    vocab: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.vocab and self.terms:
            object.__setattr__(self, "vocab", {term: i for i, term in enumerate(self.terms)})

    @property
    def num_rows(self) -> int:
        return len(self.lengths)

    @property
    def df(self) -> np.ndarray:
        """Rows holding each term (int64)."""
        return np.diff(self.indptr)

    @property
    def nbytes(self) -> int:
        return self.indptr.nbytes + self.indices.nbytes + self.tf.nbytes + self.lengths.nbytes

    def term_of_postings(self, positions: np.ndarray) -> np.ndarray:
        """Local term id of the postings at ``positions``."""
        return np.searchsorted(self.indptr, positions, side="right") - 1


def empty_postings(rows: int = 0) -> Postings:
    return Postings(
        [], np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(rows, np.int32)
    )


def build_postings(
    batches: Iterable[Sequence[str]], tokenize: Callable[[Sequence[str]], list[list[str]]]
) -> Postings:
    """Tokenize batches of row texts into one segment, holding only numpy arrays of (row, term, tf)."""
    vocab: dict[str, int] = {}
    rows_parts, terms_parts, tf_parts, length_parts = [], [], [], []
    offset = 0
    for batch in batches:
        tokens = tokenize(batch)
        lengths = np.fromiter((len(row) for row in tokens), dtype=np.int64, count=len(tokens))
        flat = np.fromiter(
            (vocab.setdefault(tok, len(vocab)) for row in tokens for tok in row),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        local_rows = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
        keys, tf = np.unique(local_rows * (len(vocab) + 1) + flat, return_counts=True)
        rows_parts.append((keys // (len(vocab) + 1) + offset).astype(np.int32))
        terms_parts.append((keys % (len(vocab) + 1)).astype(np.int32))
        tf_parts.append(tf.astype(np.float32))
        length_parts.append(lengths.astype(np.int32))
        offset += len(tokens)
    return _joined(vocab, rows_parts, terms_parts, tf_parts, length_parts, offset)


def _joined(
    vocab: dict[str, int],
    rows: list[np.ndarray],
    term_ids: list[np.ndarray],
    tf: list[np.ndarray],
    lengths: list[np.ndarray],
    total: int,
) -> Postings:
    """One segment from the per-part (row, term, tf) arrays and row lengths of ``total`` rows."""
    if not vocab:
        return empty_postings(total)
    return _from_triples(
        list(vocab),
        np.concatenate(rows),
        np.concatenate(term_ids),
        np.concatenate(tf),
        np.concatenate(lengths).astype(np.int32),
    )


def _from_triples(
    terms: list[str], rows: np.ndarray, term_ids: np.ndarray, tf: np.ndarray, lengths: np.ndarray
) -> Postings:
    """CSC from (row, term, tf) triples whose rows ascend within each term's triples (kept by a stable sort)."""
    counts = np.bincount(term_ids, minlength=len(terms))
    used = counts > 0
    if not used.all():  # every posting of a term deleted: the term leaves the vocabulary
        renumber = np.cumsum(used) - 1
        term_ids = renumber[term_ids]
        terms = [t for t, keep in zip(terms, used.tolist(), strict=True) if keep]
        counts = counts[used]
    order = np.argsort(term_ids, kind="stable")
    indptr = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Postings(terms, indptr, rows[order].astype(np.int32), tf[order].astype(np.float32), lengths)


def merge_postings(parts: Sequence[tuple[Postings, np.ndarray | None]]) -> Postings:
    """One segment of the live rows of ``parts`` (a segment and its deleted-row mask or None), in order."""
    vocab: dict[str, int] = {}
    rows_parts, terms_parts, tf_parts, length_parts = [], [], [], []
    offset = 0
    for postings, dead in parts:
        term_ids = np.repeat(np.arange(len(postings.terms), dtype=np.int64), np.diff(postings.indptr))
        rows = np.asarray(postings.indices, dtype=np.int64)
        tf = np.asarray(postings.tf)
        lengths = np.asarray(postings.lengths)
        if dead is not None and dead.any():
            keep = ~dead[rows]
            term_ids, rows, tf = term_ids[keep], rows[keep], tf[keep]
            rows = (np.cumsum(~dead) - 1)[rows]  # compact: live rows renumbered in order
            lengths = lengths[~dead]
        remap = np.fromiter(
            (vocab.setdefault(t, len(vocab)) for t in postings.terms),
            dtype=np.int64,
            count=len(postings.terms),
        )
        rows_parts.append(rows + offset)
        terms_parts.append(remap[term_ids])
        tf_parts.append(tf)
        length_parts.append(lengths)
        offset += len(lengths)
    return _joined(vocab, rows_parts, terms_parts, tf_parts, length_parts, offset)


# -- persistence ----------------------------------------------------------------------------------
# settings added after indexes were first written, with the value that reproduces what those indexes hold
_SETTINGS_BEFORE: dict[str, object] = {"analyzer": "bm25s"}


def same_settings(stored: object, settings: BM25Settings) -> bool:
    """Whether an index written with ``stored`` (its recorded settings dict) holds ``settings``' terms.

    A key an older index lacks counts as its value from before the setting existed (an index from before
    ``analyzer`` was bm25s-tokenized), so such indexes stay valid instead of being rebuilt."""
    if not isinstance(stored, dict):
        return False
    return {**_SETTINGS_BEFORE, **stored} == settings.model_dump()


def save_postings(postings: Postings, directory: Path, settings: BM25Settings) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "indptr.npy", postings.indptr)
    np.save(directory / "indices.npy", postings.indices)
    np.save(directory / "tf.npy", postings.tf)
    np.save(directory / "lengths.npy", postings.lengths)
    (directory / "terms.json").write_text(json.dumps(postings.terms, ensure_ascii=False), encoding="utf-8")
    params = {
        "format": FORMAT_VERSION,
        "rows": postings.num_rows,
        "postings": len(postings.indices),
        "terms": len(postings.terms),
        "settings": settings.model_dump(),
    }
    (directory / "params.json").write_text(json.dumps(params), encoding="utf-8")  # last: marks it complete


def load_postings(directory: Path, settings: BM25Settings) -> Postings:
    """The segment saved in ``directory``; CorruptIndex when it is unreadable, incomplete or other settings'."""
    try:
        params = json.loads((directory / "params.json").read_text(encoding="utf-8"))
        if params.get("format") != FORMAT_VERSION or not same_settings(params.get("settings"), settings):
            raise CorruptIndex(f"BM25 index at {directory} was built with other settings; it will be rebuilt")
        terms = json.loads((directory / "terms.json").read_text(encoding="utf-8"))
        postings = Postings(
            terms,
            np.load(directory / "indptr.npy"),
            np.load(directory / "indices.npy", mmap_mode="r"),
            np.load(directory / "tf.npy", mmap_mode="r"),
            np.load(directory / "lengths.npy"),
        )
        n = int(params["postings"])
        consistent = (
            len(terms) == int(params["terms"]) == len(postings.indptr) - 1
            and int(postings.indptr[-1]) == n == len(postings.indices) == len(postings.tf)
            and postings.num_rows == int(params["rows"])
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptIndex(f"BM25 index at {directory} is unreadable: {exc}") from exc
    if not consistent:
        raise CorruptIndex(
            f"BM25 index at {directory} is incomplete (array sizes disagree); it will be rebuilt"
        )
    return postings
