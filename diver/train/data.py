"""Training rows from pairs: (anchor, positive, negative_1..n) texts, and the dev IR evaluator's inputs."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

from diver.errors import InputError
from diver.train.mining import positives_by_query
from diver.train.pairs import TrainingPair

log = logging.getLogger(__name__)


def collection_corpus(collection: Any) -> dict[str, str]:
    """``{doc id: first chunk text}`` of a collection: the text the model sees of each document (a chunk is
    sized to the embedder's token budget, so a longer text would be truncated anyway)."""
    corpus: dict[str, str] = {}
    with collection.catalog.snapshot() as db:
        for rows in collection.catalog.iter_chunks(db):
            for doc_id, index, text in rows:
                if index == 0:
                    corpus[doc_id] = text
    return corpus


def positive_text(pair: TrainingPair, corpus: Mapping[str, str]) -> str:
    if pair.positive_text is not None:
        return pair.positive_text
    if pair.positive_id is None or pair.positive_id not in corpus:
        raise InputError(f"pair {pair.id or pair.query[:60]!r}: positive id {pair.positive_id!r} is not in the corpus")
    return corpus[pair.positive_id]


def training_rows(
    pairs: Sequence[TrainingPair], corpus: Mapping[str, str], n_negatives: int, seed: int = 0
) -> dict[str, list[str]]:
    """Columns ``anchor``, ``positive``, ``negative_1..n`` (every row needs the same number of negatives:
    rows short of mined negatives are topped up with random corpus documents that are not positives)."""
    rng = random.Random(seed)
    pool = sorted(corpus)
    positives = positives_by_query(pairs)
    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    columns.update({f"negative_{i + 1}": [] for i in range(n_negatives)})
    topped_up = 0
    for pair in pairs:
        columns["anchor"].append(pair.query)
        columns["positive"].append(positive_text(pair, corpus))
        negatives = [n for n in pair.negative_ids if n in corpus][:n_negatives]
        banned = positives.get(pair.query, set()) | set(negatives)
        while len(negatives) < n_negatives:
            if len(pool) <= len(banned):
                raise InputError(f"the corpus is too small for {n_negatives} negatives per query")
            candidate = rng.choice(pool)
            if candidate not in banned:
                negatives.append(candidate)
                banned.add(candidate)
                topped_up += 1
        for i, doc_id in enumerate(negatives):
            columns[f"negative_{i + 1}"].append(corpus[doc_id])
    if topped_up:
        log.info("%d negatives were random corpus documents (too few mined or given)", topped_up)
    return columns


def ir_inputs(
    pairs: Sequence[TrainingPair], corpus: Mapping[str, str], max_corpus: int = 20000, seed: int = 0
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """(queries, corpus, relevant) for ``InformationRetrievalEvaluator``: every relevant document plus up to
    ``max_corpus`` others sampled with ``seed``. Inline positives join the corpus under ``inline/<n>``."""
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    docs: dict[str, str] = {}
    qid_of: dict[str, str] = {}
    for n, pair in enumerate(pairs):
        qid = qid_of.setdefault(pair.query, pair.id or f"q{n}")
        queries[qid] = pair.query
        doc_id = pair.positive_id or f"inline/{n}"
        docs[doc_id] = positive_text(pair, corpus)
        relevant.setdefault(qid, set()).add(doc_id)
    others = [d for d in sorted(corpus) if d not in docs]
    if len(others) > max_corpus:
        others = random.Random(seed).sample(others, max_corpus)
    docs.update({d: corpus[d] for d in others})
    return queries, docs, relevant
