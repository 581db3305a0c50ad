"""GroupRank (DIVER v3): the query and a group of candidates in one prompt, every document scored 0..10.

Groups come from ``plan_groups`` (seeded shuffles); calls run concurrently under the LLM's limiter and
go through its completion cache. A failed call or an unparsable reply scores 0 for its group's documents
(the reference's rule), and is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import Field

from diver.config.rerank import GroupwiseSettings
from diver.errors import LLMError
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage
from diver.llm.prompts import delimit, load_template
from diver.stages.rerank.base import ProgressFn, RerankerSpec, RerankRequest, RerankResult
from diver.stages.rerank.groupwise_core import (
    GroupParse,
    QueryPosition,
    blend_group_scores,
    group_order,
    mean_group_scores,
    parse_group_reply,
    plan_groups,
)
from diver.stages.rerank.texts import clean_document
from diver.text.tokens import approx_tokens

_CONTEXT_SAFETY = 0.85
_CHARS_PER_TOKEN = 3  # conservative: documents are cut by characters, the context counts tokens
_MIN_DOC_CHARS = 64


class GroupwiseResult(RerankResult):
    order: list[str] = Field(description="Grouped candidates by blended score, then the rest in prior order.")
    group_scores: dict[str, float] = Field(description="Mean of a document's group scores / 10 (0..1).")
    combined: dict[str, float] = Field(description="blend * group score + (1 - blend) * retrieval score.")
    groups: int = 0
    calls: int = 0
    parse_failures: int = Field(0, description="Replies with no usable score (their documents scored 0).")
    call_failures: int = Field(0, description="Failed calls (their documents scored 0).")
    repaired: int = Field(0, description="Replies saved by the reference's JSON repairs.")
    dropped_entries: int = Field(0, description="Unknown positions, duplicate keys or scores outside 0..10.")
    unscored: list[str] = Field(default_factory=list, description="Grouped documents no reply scored.")
    doc_chars: int = Field(0, description="Characters kept per document (max_doc_chars, or less to fit).")
    failures: list[str] = Field(default_factory=list, description="Why each failed group failed.")

    def hit_scores(self, doc_id: str) -> dict[str, float]:
        if doc_id not in self.combined:
            return {}
        return {"groupwise": self.combined[doc_id], "groupwise_group": self.group_scores.get(doc_id, 0.0)}

    def parse_failure_count(self) -> int:
        return self.parse_failures


def doc_chars_for(query: str, size: int, settings: GroupwiseSettings, context_window: int, max_output: int) -> int:
    """``max_doc_chars``, or less when a group of ``size`` documents would not fit the model's context."""
    overhead = sum(
        approx_tokens(text) for _, text in load_template("groupwise").render(query=query, topk=size, passages="")
    )
    budget_tokens = int(context_window * _CONTEXT_SAFETY) - overhead - max_output
    fit = budget_tokens * _CHARS_PER_TOKEN // max(size, 1) - 40
    return max(_MIN_DOC_CHARS, min(settings.max_doc_chars, fit))


def group_prompt(query: str, texts: Sequence[str], doc_chars: int) -> list[tuple[str, str]]:
    """The reference's ``[i]. text`` passages, each inside <document> markers (data, never instructions)."""
    passages = "".join(
        f"[{i}]. {delimit(clean_document(text, doc_chars))}\n\n" for i, text in enumerate(texts, 1)
    )
    return load_template("groupwise").render(query=query, topk=len(texts), passages=passages.rstrip("\n"))


async def rerank_groupwise(
    llm: ChatLLM,
    query: str,
    candidates: Sequence[SearchHit],
    texts: dict[str, str],
    settings: GroupwiseSettings,
    usage: LLMUsage,
    progress: ProgressFn | None = None,
    mode: str = "reference",
    position: QueryPosition | None = None,
) -> GroupwiseResult:
    """Score the top ``input_k`` candidates in groups; the rest follow in their prior order."""
    prior = [h.id for h in candidates]
    grouped = prior[: settings.input_k]
    groups = plan_groups(grouped, settings.group_size, settings.interval, settings.repeat_num, settings.seed,
                         position)  # fmt: skip
    size = max((len(g) for g in groups), default=1)
    window, source = await llm.context_window()
    output = settings.max_tokens
    doc_chars = settings.max_doc_chars  # the reference's cut; shrunk only to fit a window the model reports
    if not source.startswith("default"):
        output = min(output, window // 2)  # a reply may not take the whole window (vLLM refuses the request)
        doc_chars = doc_chars_for(query, size, settings, window, output)
    sampler = llm.with_sampling(settings.temperature, max_tokens=output, top_p=settings.top_p)
    total, done = len(groups), 0

    async def score(group: list[str]) -> GroupParse | LLMError:
        nonlocal done
        messages = group_prompt(query, [texts[d] for d in group], doc_chars)
        try:
            reply = await sampler.complete(messages, usage)
            outcome: GroupParse | LLMError = parse_group_reply(reply, len(group))
        except LLMError as exc:
            outcome = exc
        done += 1
        if progress is not None:
            progress(done, total)
        return outcome

    outcomes = await asyncio.gather(*(score(g) for g in groups))
    result = GroupwiseResult(order=prior, group_scores={}, combined={}, groups=len(groups), doc_chars=doc_chars)
    parses: list[GroupParse | None] = []
    for number, outcome in enumerate(outcomes, 1):
        if isinstance(outcome, LLMError):
            result.call_failures += 1
            result.failures.append(f"group {number}: {outcome}")
            parses.append(None)
            continue
        result.calls += 1
        result.repaired += int(outcome.repaired and not outcome.failed)
        result.dropped_entries += outcome.dropped
        if outcome.failed:
            result.parse_failures += 1
            result.failures.append(f"group {number}: {outcome.error}")
        parses.append(outcome)
    result.group_scores, result.unscored = mean_group_scores(groups, parses)
    retrieval = {h.id: h.score for h in candidates if h.id in result.group_scores}
    result.combined = blend_group_scores(result.group_scores, retrieval, settings.blend, mode)
    ranked = group_order(grouped, result.group_scores, result.combined)
    result.order = ranked + [d for d in prior if d not in result.combined]
    return result


async def _run(request: RerankRequest) -> GroupwiseResult:
    rerank = request.settings
    position = request.position if rerank.groupwise.shuffle == "reference" else None
    if position is not None and len(position.lengths) > position.index:
        own = min(rerank.groupwise.input_k, len(request.candidates))
        lengths = list(position.lengths)
        lengths[position.index] = own  # this query's real count (the others are assumed input_k)
        position = QueryPosition(position.index, tuple(lengths))
    return await rerank_groupwise(request.llm, request.query, request.candidates, request.texts, rerank.groupwise,
                                  request.usage, request.progress, rerank.pointwise_mode, position)  # fmt: skip


def _notes(result: GroupwiseResult) -> list[str]:
    failed = result.parse_failures + result.call_failures
    return [f"groupwise: {failed} of {result.groups} groups unusable (their documents scored 0)"] if failed else []


SPEC = RerankerSpec(
    name="groupwise",
    description="GroupRank (DIVER v3): groups of candidates scored 0..10 per call over seeded shuffled rounds.",
    run=_run,
    result=GroupwiseResult,
    needs_llm=True,
    settings_section="groupwise",
    default_weight=0.4,
    text_limit=lambda rerank: rerank.groupwise.max_doc_chars,  # characters, passed as the token budget
    notes=_notes,
)
