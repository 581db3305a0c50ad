"""Hard negatives mined with the current retriever: hybrid top-k minus the positives, with a false-negative
guard (a candidate whose dense score comes within ``margin`` of the positive's is skipped, as ms-swift's
InfoNCE masks fake negatives)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from diver.errors import DocumentNotFound, InputError
from diver.train.pairs import TrainingPair

log = logging.getLogger(__name__)


@dataclass
class MiningReport:
    queries: int = 0
    mined: int = 0
    skipped_false_negatives: int = 0
    without_negatives: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "mined": self.mined,
            "skipped_false_negatives": self.skipped_false_negatives,
            "without_negatives": self.without_negatives,
        }


def positives_by_query(pairs: Sequence[TrainingPair]) -> dict[str, set[str]]:
    """Every positive id of each query text (a query may have several pairs): none may become a negative."""
    out: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        if pair.positive_id:
            out[pair.query].add(pair.positive_id)
    return out


# Over 60 lines: batches of pairs (search, embed, false-negative guard, fill) sharing the text and vector caches and the report.
def mine_hard_negatives(
    collection: Any,
    pairs: Sequence[TrainingPair],
    n_negatives: int = 3,
    k: int = 30,
    margin: float = 0.1,
    mode: str = "hybrid",
    batch: int = 64,
) -> tuple[list[TrainingPair], MiningReport]:
    """Pairs with up to ``n_negatives`` mined negative ids added after any given ones.

    Candidates are the collection's top-``k`` documents (``mode``, default hybrid) with the query's positives
    excluded at search time and again here. The guard: a candidate whose dense cosine to the query is at
    least the positive's minus ``margin`` is skipped as a probable false negative (``margin`` < 0 relaxes it:
    -0.1 skips only candidates scoring 0.1 above the positive). Inline ``positive_text`` is embedded as is.
    """
    if n_negatives < 0 or k < 1:
        raise InputError(f"n_negatives must be >= 0 and k >= 1, got {n_negatives}, {k}")
    report = MiningReport(queries=len(pairs))
    if n_negatives == 0 or not pairs:
        return list(pairs), report
    embedder = collection.engine.embedder
    positives = positives_by_query(pairs)
    doc_texts: dict[str, str] = {}
    doc_vectors: dict[str, np.ndarray] = {}  # each candidate is embedded once, however often it comes up

    def text_of(doc_id: str) -> str:
        if doc_id not in doc_texts:
            doc_texts[doc_id] = collection.get(doc_id).text
        return doc_texts[doc_id]

    out: list[TrainingPair] = []
    for start in range(0, len(pairs), batch):
        part = list(pairs[start : start + batch])
        excludes = [positives.get(p.query, set()) | set(p.negative_ids) for p in part]
        results = collection.search_many(
            [p.query for p in part], k=k, mode=mode, exclude=[set(e) for e in excludes]
        )
        query_vecs = embedder.embed_queries([p.query for p in part])
        for pair, result, excluded, qv in zip(part, results, excludes, query_vecs, strict=True):
            try:
                # parse_pair guarantees exactly one of positive_text / positive_id
                positive = pair.positive_text if pair.positive_text is not None else text_of(str(pair.positive_id))
            except DocumentNotFound as exc:
                raise InputError(f"pair {pair.id or pair.query[:60]!r}: positive not in the collection: {exc}") from exc
            candidates = [h.id for h in result.hits if h.id not in excluded]
            if not candidates:
                out.append(pair)
                report.without_negatives += 1
                continue
            new = [c for c in candidates if c not in doc_vectors]
            if new:
                doc_vectors.update(zip(new, embedder.embed_documents([text_of(c) for c in new]), strict=True))
            if pair.positive_id is not None and pair.positive_id not in doc_vectors:
                doc_vectors[pair.positive_id] = embedder.embed_documents([positive])[0]
            pos_vec = doc_vectors[pair.positive_id] if pair.positive_id else embedder.embed_documents([positive])[0]
            vectors = np.vstack([pos_vec] + [doc_vectors[c] for c in candidates])
            scores = vectors @ np.asarray(qv, dtype=np.float32)
            threshold = float(scores[0]) - margin
            mined: list[str] = []
            for doc_id, score in zip(candidates, scores[1:], strict=True):
                if len(pair.negative_ids) + len(mined) >= n_negatives:
                    break
                if score >= threshold:
                    report.skipped_false_negatives += 1
                    continue
                mined.append(doc_id)
            report.mined += len(mined)
            if not mined and not pair.negative_ids:
                report.without_negatives += 1
            out.append(replace(pair, negative_ids=list(pair.negative_ids) + mined))
    log.info("hard negatives: %s", report.as_dict())
    return out, report
