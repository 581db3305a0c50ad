"""DIVER-QExpand (after ThinkQE): iterative LLM query expansion from unseen feedback passages.

Round r >= 1 shows the LLM ``feedback_k`` top documents of the previous round that it has not seen yet
(a per-query filter), each cut to ``passage_tokens`` tokens, and asks for an answering passage (round 1)
or a refinement of its previous answer (rounds >= 2). ``n`` completions are sampled; reasoning before a
final ``</think>`` is dropped. The next query is the original query, a blank line, and this round's
expansions (expansions are not accumulated across rounds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from diver.config import ExpansionSettings
from diver.errors import DiverError
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage, Message
from diver.llm.prompts import delimit, load_template
from diver.llm.replies import cut_in_reasoning, strip_reasoning  # re-exported (callers import them here)
from diver.stages.assembly_plan import concat
from diver.text.tokens import truncate_tokens

log = logging.getLogger(__name__)


class ExpansionRound(BaseModel):
    """What one expansion round did."""

    round: int
    feedback_ids: list[str] = Field(default_factory=list, description="Documents shown to the LLM.")
    expansions: list[str] = Field(
        default_factory=list, description="Non-empty completions, reasoning stripped."
    )
    query: str = Field(description="The query retrieved with after this round.")
    failures: list[str] = Field(default_factory=list, description="Failed calls and empty completions.")
    truncated: int = Field(
        0, description="Completions cut inside <think> (max_tokens reached before the answer)."
    )


def dense_feedback_hits(retriever: Any, query: str, k: int) -> list[SearchHit] | None:
    """The dense-only ranking of ``query`` (DIVER's QExpand feeds back dense-retrieval passages), from a
    retriever's ``search_dense(query, k)`` or its engine collection's ``search(..., mode="dense")``;
    None when the retriever offers no dense mode."""
    search_dense = getattr(retriever, "search_dense", None)
    if callable(search_dense):
        return list(search_dense(query, k))
    collection = getattr(retriever, "collection", None)
    if collection is not None and callable(getattr(collection, "search", None)):
        return list(collection.search(query, k=k, mode="dense").hits)
    return None


def select_feedback(hits: Iterable[SearchHit], seen: Iterable[str], k: int) -> list[str]:
    """The first ``k`` document ids of ``hits`` not shown to the LLM before."""
    already = set(seen)
    chosen: list[str] = []
    for hit in hits:
        if len(chosen) >= k:
            break
        if hit.id not in already:
            chosen.append(hit.id)
            already.add(hit.id)
    return chosen


def build_expansion_messages(query: str, passages: Sequence[str], previous: str | None) -> list[Message]:
    """Round-1 prompt when ``previous`` is None, otherwise the refinement prompt."""
    block = "\n\n".join(delimit(p, "passage", f"[{i}]") for i, p in enumerate(passages, 1)) or "(none)"
    if previous is None:
        return load_template("expand_first").render(query=query, passages=block)
    return load_template("expand_refine").render(query=query, passages=block, previous=previous)


def feedback_passages(
    ids: Sequence[str], hits: Sequence[SearchHit], get_text: Callable[[str], str], max_tokens: int,
    cut: Callable[[str, int], str] = truncate_tokens,
) -> list[str]:
    """Full texts of ``ids`` cut to ``max_tokens`` by ``cut`` (approximate tokens, or a tokenizer's); the hit's
    highlight stands in if the text is gone."""
    by_id = {h.id: h for h in hits}
    texts: list[str] = []
    for doc_id in ids:
        try:
            text = get_text(doc_id)
        except DiverError as exc:
            log.warning("feedback document %r unavailable (%s); using its highlight", doc_id, exc)
            text = by_id[doc_id].highlight if doc_id in by_id else ""
        texts.append(cut(text, max_tokens))
    return texts


def spanner_cut(spanner: Any) -> Callable[[str, int], str]:
    """A cut at ``n`` tokens of ``spanner`` (a ``TokenSpanner``: the embedding model's tokenizer), as the
    reference's ``truncate_text`` (encode, keep ``n`` ids, decode) but on the original characters."""

    def cut(text: str, max_tokens: int) -> str:
        spans = spanner.token_spans(text)
        return text if len(spans) <= max_tokens else text[: spans[max_tokens - 1][1]]

    return cut


async def expand_round(
    llm: ChatLLM,
    query: str,
    hits: Sequence[SearchHit],
    get_text: Callable[[str], str],
    seen: Iterable[str],
    previous: Sequence[str],
    round_no: int,
    settings: ExpansionSettings,
    usage: LLMUsage,
    cut: Callable[[str, int], str] = truncate_tokens,
) -> ExpansionRound:
    """Run expansion round ``round_no`` (>= 1) for the ORIGINAL ``query`` given last round's ``hits``."""
    ids = select_feedback(hits, seen, settings.feedback_k)
    passages = feedback_passages(ids, hits, get_text, settings.passage_tokens, cut)
    kept = [p for p in previous if p.strip()]
    if settings.refine_with == "last":
        kept = kept[-1:]  # the reference: accumulated_query_expansions[topic_id][-1]
    prior = "\n\n".join(kept) if round_no >= 2 else ""
    messages = build_expansion_messages(query, passages, prior or None)
    expansions: list[str] = []
    failures: list[str] = []
    truncated = 0
    for i, outcome in enumerate(await llm.sample(messages, settings.n, usage)):
        if isinstance(outcome, Exception):
            failures.append(f"sample {i}: {outcome}")
            continue
        text = strip_reasoning(outcome)
        if text:
            expansions.append(text)
        elif cut_in_reasoning(outcome):
            truncated += 1
            finish = getattr(outcome, "finish_reason", None) or "not reported"
            failures.append(
                f"sample {i}: reply cut inside <think> before any answer (finish_reason {finish}); "
                f"raise llm.expander.max_tokens (now {llm.settings.max_tokens})"
            )
        else:
            failures.append(f"sample {i}: empty completion after removing reasoning")
    return ExpansionRound(
        round=round_no,
        feedback_ids=ids,
        expansions=expansions,
        query=concat(query, expansions),  # the one QExpand concatenation (query assembly's)
        failures=failures,
        truncated=truncated,
    )
