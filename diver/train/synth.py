"""``diver synth``: DIVER-style synthetic training queries from a user's own corpus.

For sampled documents the configured LLM writes reasoning-intensive queries that need the document without
naming its key terms (``prompts/synth_query.txt``). Filters drop near-copies of the document (lexical
overlap, a copied word span, the document's title in the query) and, optionally, queries the LLM judges the
document does not answer (``prompts/synth_check.txt``). Output: ``finetune`` pairs (``positive_id``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diver.errors import InputError, LLMError
from diver.llm.client import ChatLLM, LLMUsage
from diver.llm.prompts import delimit, load_template
from diver.train.pairs import TrainingPair

log = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z0-9]+")
_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)]|query\s*\d*\s*[:.)-])?\s*(.+?)\s*$", re.IGNORECASE)
_ANSWERABLE = re.compile(r"answerable\s*:\s*(yes|no)", re.IGNORECASE)
STOPWORDS = frozenset(
    "the a an and or of to in on for with by from at as is are was were be been it its this that these those "
    "what which who whom how why when where if then than so such can could would should may might must do does "
    "did has have had not no you your we our they their he she his her i me my there here into over under "
    "about after before between each all any some more most other same very just only also".split()
)


@dataclass
class SynthConfig:
    documents: int = 50  # documents sampled
    per_document: int = 2  # queries asked for per document
    seed: int = 0
    max_document_chars: int = 3000
    max_overlap: float = 0.5  # drop a query when this share of its content words occur in the document
    max_copied_words: int = 6  # drop a query that copies a run of this many document words
    min_words: int = 5
    check: bool = False  # ask the LLM whether the document answers the query


@dataclass
class SynthReport:
    documents: int = 0
    generated: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    failed_documents: int = 0
    usage: LLMUsage = field(default_factory=LLMUsage)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "generated": self.generated, "kept": self.kept,
                "dropped": dict(self.dropped), "failed_documents": self.failed_documents,
                "llm_calls": self.usage.calls, "llm_tokens": self.usage.total_tokens}  # fmt: skip


def parse_queries(reply: str, limit: int) -> list[str]:
    """Queries from a reply: ``Query:`` lines (or bullet/numbered lines when there are none), deduplicated."""
    reply = re.sub(r"<think>.*?(</think>|$)", "", reply, flags=re.DOTALL | re.IGNORECASE)
    lines = [line for line in reply.splitlines() if line.strip()]
    tagged = [line for line in lines if re.match(r"^\s*(?:[-*•]|\d+[.)])?\s*query\s*\d*\s*:", line, re.IGNORECASE)]
    out: list[str] = []
    for line in tagged or lines:
        match = _LINE.match(line)
        text = match.group(1).strip().strip('"').strip() if match else ""
        if text and text.lower() not in {q.lower() for q in out}:
            out.append(text)
    return out[:limit]


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2]


def overlap_reason(query: str, document: str, config: SynthConfig) -> str | None:
    """Why ``query`` is a near-copy of ``document`` (None when it is not)."""
    words = content_words(query)
    if len(_WORD.findall(query.lower())) < config.min_words:
        return "too_short"
    doc_words = _WORD.findall(document.lower())
    title = document.strip().splitlines()[0].strip().lower() if document.strip() else ""
    if title and len(title) >= 4 and title in query.lower():
        return "names_title"
    if words and sum(w in set(doc_words) for w in words) / len(words) > config.max_overlap:
        return "lexical_overlap"
    n = config.max_copied_words
    query_words = _WORD.findall(query.lower())
    doc_grams = {tuple(doc_words[i : i + n]) for i in range(len(doc_words) - n + 1)}
    if any(tuple(query_words[i : i + n]) in doc_grams for i in range(len(query_words) - n + 1)):
        return "copied_span"
    return None


def sample_documents(corpus: Mapping[str, str], n: int, seed: int) -> list[str]:
    ids = sorted(corpus)
    return ids if n >= len(ids) else sorted(random.Random(seed).sample(ids, n))


async def _for_document(writer: ChatLLM, checker: ChatLLM | None, doc_id: str, text: str,
                        config: SynthConfig, report: SynthReport) -> list[TrainingPair]:  # fmt: skip
    document = delimit(text[: config.max_document_chars])
    messages = load_template("synth_query").render(document=document, n=config.per_document)
    try:
        reply = await writer.complete(messages, report.usage)
    except LLMError as exc:
        log.warning("synth: no queries for %s: %s", doc_id, exc)
        report.failed_documents += 1
        return []
    kept: list[TrainingPair] = []
    for query in parse_queries(reply, config.per_document):
        report.generated += 1
        reason = overlap_reason(query, text, config)
        if reason is None and checker is not None:
            check = load_template("synth_check").render(query=query, document=document)
            try:
                verdict = _ANSWERABLE.search(await checker.complete(check, report.usage))
            except LLMError as exc:
                log.warning("synth: answerability check failed for %s: %s", doc_id, exc)
                verdict = None
            reason = None if verdict and verdict.group(1).lower() == "yes" else "not_answerable"
        if reason is not None:
            report.drop(reason)
            continue
        kept.append(TrainingPair(query=query, positive_id=doc_id, id=f"synth/{doc_id}/{len(kept)}"))
    return kept


async def synthesize(corpus: Mapping[str, str], writer: ChatLLM, config: SynthConfig,
                     checker: ChatLLM | None = None) -> tuple[list[TrainingPair], SynthReport]:  # fmt: skip
    """Synthetic pairs for ``config.documents`` documents sampled from ``corpus`` (``{id: text}``)."""
    if config.documents < 1 or config.per_document < 1:
        raise InputError("documents and per_document must be >= 1")
    if not corpus:
        raise InputError("the corpus is empty")
    if config.check and checker is None:
        checker = writer
    chosen = sample_documents(corpus, config.documents, config.seed)
    report = SynthReport(documents=len(chosen))
    batches = await asyncio.gather(
        *(_for_document(writer, checker if config.check else None, d, corpus[d], config, report) for d in chosen)
    )
    pairs = [pair for batch in batches for pair in batch]
    report.kept = len(pairs)
    return pairs, report


def run_synthesize(corpus: Mapping[str, str], writer: ChatLLM, config: SynthConfig,
                   checker: ChatLLM | None = None) -> tuple[list[TrainingPair], SynthReport]:  # fmt: skip
    return asyncio.run(synthesize(corpus, writer, config, checker))


