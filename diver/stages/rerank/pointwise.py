"""Pointwise reranking (DIVER v2): one "Relevance score: X" (0..10) call per document, blended with the
retrieval score. Failures are recorded, never hidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import Field

from diver.config import RerankSettings
from diver.errors import LLMError
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage
from diver.llm.prompts import delimit, load_template
from diver.stages.rerank.base import ProgressFn, RerankerSpec, RerankRequest, RerankResult
from diver.stages.rerank.parsers import combine_pointwise, parse_relevance_score, pointwise_order


class PointwiseResult(RerankResult):
    order: list[str] = Field(description="Candidates by combined score, best first.")
    llm_scores: dict[str, float | None] = Field(description="Parsed 0..10 scores; None = missing.")
    combined: dict[str, float] = Field(
        description="blend * LLM/10 + (1 - blend) * retrieval score (see RerankSettings.pointwise_mode)."
    )
    mode: str = Field("reference", description="How missing scores and the retrieval scale were handled.")
    parse_failures: list[str] = Field(default_factory=list, description="Ids whose reply had no score.")
    call_failures: list[str] = Field(default_factory=list, description="Ids whose call failed.")

    def hit_scores(self, doc_id: str) -> dict[str, float]:
        out: dict[str, float] = {}
        if doc_id in self.combined:
            out["pointwise"] = self.combined[doc_id]
            llm = self.llm_scores.get(doc_id)
            if llm is not None:
                out["pointwise_llm"] = llm
        return out

    def parse_failure_count(self) -> int:
        return len(self.parse_failures)


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
    sampling = settings.pointwise_sampling
    llm = llm.with_sampling(sampling.temperature, max_tokens=sampling.max_tokens, top_p=sampling.top_p)
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


async def _run(request: RerankRequest) -> PointwiseResult:
    return await rerank_pointwise(request.llm, request.query, request.candidates, request.texts,
                                  request.settings, request.usage, request.progress)  # fmt: skip


def _notes(result: PointwiseResult) -> list[str]:
    filled = "scored 0, as DIVER" if result.mode == "reference" else "mean LLM score used"
    notes = []
    if result.parse_failures:
        notes.append(f"pointwise: {len(result.parse_failures)} replies without a score ({filled})")
    if result.call_failures:
        notes.append(f"pointwise: {len(result.call_failures)} failed calls ({filled})")
    return notes


SPEC = RerankerSpec(
    name="pointwise",
    description="DIVER v2: one 'Relevance score: X' (0..10) call per document, blended with the retrieval score.",
    run=_run,
    result=PointwiseResult,
    needs_llm=True,
    default_weight=0.6,
    text_limit=lambda rerank: rerank.pointwise_doc_tokens or rerank.doc_tokens,
    notes=_notes,
)
