"""LLM reranking of the final hybrid list with the ORIGINAL query: pointwise, listwise, and their merge.

Pointwise asks one "Relevance score: X" (0..10) per document; listwise ranks numbered candidates in one
call when the context allows, else in RankGPT sliding windows. Failures are recorded, never hidden.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from diver.config import RerankSettings
from diver.errors import DiverError, LLMError
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage
from diver.llm.prompts import delimit, load_template
from diver.stages.rerank.parsers import (
    apply_ranking,
    combine_pointwise,
    merge_rankings,
    parse_ranking,
    parse_relevance_score,
    pointwise_order,
    window_spans,
)
from diver.text.tokens import approx_tokens, truncate_tokens

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
"""Called with (calls done, calls total)."""

_CONTEXT_SAFETY = 0.85  # our token estimate is approximate; keep a margin below the real context
_PER_CANDIDATE_OVERHEAD = 12  # "[12] <document>...</document>" markup
_MIN_DOC_TOKENS = 16


class PointwiseResult(BaseModel):
    order: list[str] = Field(description="Candidates by combined score, best first.")
    llm_scores: dict[str, float | None] = Field(description="Parsed 0..10 scores; None = missing.")
    combined: dict[str, float] = Field(
        description="blend * LLM/10 + (1 - blend) * retrieval score (see RerankSettings.pointwise_mode)."
    )
    mode: str = Field("reference", description="How missing scores and the retrieval scale were handled.")
    parse_failures: list[str] = Field(default_factory=list, description="Ids whose reply had no score.")
    call_failures: list[str] = Field(default_factory=list, description="Ids whose call failed.")


class ListwiseResult(BaseModel):
    order: list[str] = Field(description="Candidates in listwise order, best first.")
    calls: int = 0
    windows: int = 0
    parse_failures: int = Field(0, description="Replies with no usable ranking (that window kept its order).")
    call_failures: int = 0
    dropped_ids: int = Field(0, description="Invalid, duplicate or out-of-range ids removed from replies.")
    fallback: bool = Field(False, description="True when no call produced a ranking: prior order returned.")
    notes: list[str] = Field(default_factory=list)


def document_texts(
    candidates: Sequence[SearchHit], get_text: Callable[[str], str], max_tokens: int
) -> dict[str, str]:
    """Full texts cut to ``max_tokens``; the hit's highlight stands in when the text cannot be read."""
    texts: dict[str, str] = {}
    for hit in candidates:
        try:
            text = get_text(hit.id)
        except DiverError as exc:
            log.warning("document %r unavailable (%s); using its highlight", hit.id, exc)
            text = hit.highlight
        texts[hit.id] = truncate_tokens(text, max_tokens)
    return texts


async def rerank_pointwise(
    llm: ChatLLM,
    query: str,
    candidates: Sequence[SearchHit],
    texts: dict[str, str],
    settings: RerankSettings,
    usage: LLMUsage,
    progress: ProgressFn | None = None,
) -> PointwiseResult:
    """Score every candidate (concurrently, bounded by the LLM's semaphore) and blend with retrieval scores."""
    template = load_template(f"pointwise_{settings.domain_kind}")
    total, done = len(candidates), 0

    async def score(hit: SearchHit) -> tuple[str, str | LLMError]:
        nonlocal done
        messages = template.render(query=query, document=delimit(texts[hit.id]))
        try:
            reply: str | LLMError = await llm.complete(messages, usage)
        except LLMError as exc:
            reply = exc
        done += 1
        if progress is not None:
            progress(done, total)
        return hit.id, reply

    llm_scores: dict[str, float | None] = {}
    parse_failures: list[str] = []
    call_failures: list[str] = []
    for doc_id, reply in await asyncio.gather(*(score(h) for h in candidates)):
        if isinstance(reply, LLMError):
            llm_scores[doc_id] = None
            call_failures.append(doc_id)
            continue
        llm_scores[doc_id] = parse_relevance_score(reply)
        if llm_scores[doc_id] is None:
            parse_failures.append(doc_id)
    combined = combine_pointwise(
        llm_scores, {h.id: h.score for h in candidates}, settings.pointwise_blend, settings.pointwise_mode
    )
    return PointwiseResult(
        order=pointwise_order([h.id for h in candidates], llm_scores, combined),
        llm_scores=llm_scores,
        combined=combined,
        mode=settings.pointwise_mode,
        parse_failures=parse_failures,
        call_failures=call_failures,
    )


def listwise_plan(
    query: str, texts: Sequence[str], settings: RerankSettings, context_window: int, max_output: int
) -> tuple[list[tuple[int, int]], int]:
    """Windows ``[start, end)`` and the per-document token budget that make each prompt fit the context."""
    overhead = approx_tokens(
        load_template("listwise").render(query=query, count=len(texts), candidates="")[-1][1]
    )
    budget = int(context_window * _CONTEXT_SAFETY) - overhead - min(max_output, 6 * len(texts) + 64)
    needed = sum(min(settings.doc_tokens, approx_tokens(t)) + _PER_CANDIDATE_OVERHEAD for t in texts)
    if needed <= budget:
        return window_spans(len(texts), len(texts), 1), settings.doc_tokens
    size = min(settings.window_size, len(texts))
    window_budget = int(context_window * _CONTEXT_SAFETY) - overhead - min(max_output, 6 * size + 64)
    per_doc = max(_MIN_DOC_TOKENS, window_budget // size - _PER_CANDIDATE_OVERHEAD)
    return window_spans(len(texts), size, settings.window_step), min(settings.doc_tokens, per_doc)


async def rerank_listwise(
    llm: ChatLLM,
    query: str,
    candidates: Sequence[SearchHit],
    texts: dict[str, str],
    settings: RerankSettings,
    usage: LLMUsage,
    progress: ProgressFn | None = None,
) -> ListwiseResult:
    """Rank all candidates in one call if they fit the model's context, else with sliding windows."""
    order = [h.id for h in candidates]
    model = llm.settings
    spans, per_doc = listwise_plan(
        query, [texts[d] for d in order], settings, model.context_window, model.max_tokens
    )
    result = ListwiseResult(order=order, windows=len(spans))
    if len(spans) > 1:
        result.notes.append(f"{len(spans)} windows of {settings.window_size}, {per_doc} tokens per document")
    template = load_template("listwise")
    succeeded = 0
    for done, (start, end) in enumerate(spans, 1):
        window = order[start:end]
        block = "\n\n".join(
            delimit(truncate_tokens(texts[d], per_doc), label=f"[{i}]") for i, d in enumerate(window, 1)
        )
        messages = template.render(query=query, count=len(window), candidates=block)
        try:
            reply = await llm.complete(messages, usage)
            result.calls += 1
        except LLMError as exc:
            result.call_failures += 1
            result.notes.append(f"window {start}-{end}: {exc}")
            reply = ""
        if reply:
            parsed = parse_ranking(reply, len(window))
            result.dropped_ids += parsed.dropped
            if parsed.failed:
                result.parse_failures += 1
            else:
                succeeded += 1
                order[start:end] = apply_ranking(window, parsed.order)
        if progress is not None:
            progress(done, len(spans))
    result.order = order
    result.fallback = succeeded == 0 and bool(spans)
    if result.fallback:
        result.notes.append("listwise produced no ranking; prior order kept")
    return result


def merge_reranked(
    prior: Sequence[str],
    pointwise: PointwiseResult | None,
    listwise: ListwiseResult | None,
    settings: RerankSettings,
) -> tuple[list[str], dict[str, float]]:
    """final = w_p * -ln(rank_p + 1) + w_l * -ln(rank_l + 1), ranks from 0, over the stages that ran."""
    rankings: list[tuple[Sequence[str], float]] = []
    if pointwise is not None:
        rankings.append((pointwise.order, settings.pointwise_weight))
    if listwise is not None:  # a failed listwise stage contributes the prior order, as recorded
        rankings.append((listwise.order, settings.listwise_weight))
    if not rankings:
        return list(prior), {}
    return merge_rankings(prior, rankings)
