"""Listwise reranking (DIVER v2): numbered candidates ranked in one call when the context allows, else in
RankGPT sliding windows. A window without a usable ranking keeps its prior order, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from diver.config import RerankSettings
from diver.errors import LLMError
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage, Reply
from diver.llm.prompts import delimit, load_template
from diver.stages.rerank.base import ProgressFn, RerankerSpec, RerankRequest, RerankResult
from diver.stages.rerank.parsers import apply_ranking, parse_ranking, window_spans
from diver.text.tokens import approx_tokens, truncate_tokens

_CONTEXT_SAFETY = 0.85  # our token estimate is approximate; keep a margin below the real context
_PER_CANDIDATE_OVERHEAD = 12  # "[12] <document>...</document>" markup
_MIN_DOC_TOKENS = 16


class ListwiseResult(RerankResult):
    order: list[str] = Field(description="Candidates in listwise order, best first.")
    calls: int = 0
    windows: int = 0
    parse_failures: int = Field(0, description="Replies with no usable ranking (that window kept its order).")
    call_failures: int = 0
    dropped_ids: int = Field(0, description="Invalid, duplicate or out-of-range ids removed from replies.")
    fallback: bool = Field(False, description="True when no call produced a ranking: prior order returned.")
    context_window: int = Field(0, description="The model's context in tokens that sized the calls.")
    context_source: str = Field("", description="'setting', 'endpoint: ...' (/v1/models) or 'default: why'.")
    notes: list[str] = Field(default_factory=list)

    def hit_scores(self, doc_id: str) -> dict[str, float]:
        return {"listwise_rank": float(self.order.index(doc_id) + 1)} if doc_id in self.order else {}

    def parse_failure_count(self) -> int:
        return self.parse_failures

    def fell_back(self) -> bool:
        return self.fallback


def listwise_plan(
    query: str, texts: Sequence[str], settings: RerankSettings, context_window: int, max_output: int
) -> tuple[list[tuple[int, int]], int]:
    """Windows ``[start, end)`` and the per-document token budget that make each prompt fit the context."""
    overhead = approx_tokens(
        load_template("listwise").render(query=query, count=len(texts), candidates="")[-1][1]
    )
    budget = int(context_window * _CONTEXT_SAFETY) - overhead - min(max_output, 6 * len(texts) + 64)
    one_call = listwise_doc_tokens(settings)
    needed = sum(min(one_call, approx_tokens(t)) + _PER_CANDIDATE_OVERHEAD for t in texts)
    if needed <= budget:
        return window_spans(len(texts), len(texts), 1), one_call
    size = min(settings.window_size, len(texts))
    window_budget = int(context_window * _CONTEXT_SAFETY) - overhead - min(max_output, 6 * size + 64)
    per_doc = max(_MIN_DOC_TOKENS, window_budget // size - _PER_CANDIDATE_OVERHEAD)
    return window_spans(len(texts), size, settings.window_step), min(settings.doc_tokens, per_doc)


def listwise_doc_tokens(settings: RerankSettings) -> int:
    """The per-document cut when every candidate goes into one call (DIVER: none; ours: doc_tokens)."""
    return settings.listwise_doc_tokens or settings.doc_tokens


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
    sampling = settings.listwise_sampling
    llm = llm.with_sampling(sampling.temperature, max_tokens=sampling.max_tokens, top_p=sampling.top_p)
    context, source = await llm.context_window()
    spans, per_doc = listwise_plan(query, [texts[d] for d in order], settings, context, llm.settings.max_tokens)
    result = ListwiseResult(order=order, windows=len(spans), context_window=context, context_source=source)
    if len(spans) > 1:
        result.notes.append(
            f"{len(spans)} windows of {settings.window_size}, {per_doc} tokens per document "
            f"(context window {context}, {source})"
        )
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
            reply = Reply("")
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


async def _run(request: RerankRequest) -> ListwiseResult:
    return await rerank_listwise(request.llm, request.query, request.candidates, request.texts,
                                 request.settings, request.usage, request.progress)  # fmt: skip


def _notes(result: ListwiseResult) -> list[str]:
    if result.fallback:
        return ["listwise: no usable ranking, prior order kept"]
    if result.parse_failures or result.call_failures:
        return [f"listwise: {result.parse_failures + result.call_failures} window(s) kept prior order"]
    return []


SPEC = RerankerSpec(
    name="listwise",
    description="DIVER v2: numbered candidates ranked in one call, or in RankGPT sliding windows.",
    run=_run,
    result=ListwiseResult,
    needs_llm=True,
    default_weight=0.4,
    text_limit=listwise_doc_tokens,
    notes=_notes,
)
