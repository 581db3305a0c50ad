"""GroupRank end to end against llama.cpp serving SmolLM2-135M: real HTTP, sampling parameters, parsing.

A 135M model rarely writes the reference's JSON: the point is that its failures are recorded (the group's
documents score 0, as DIVER) and the ranking stays a permutation of the candidates.
"""

from __future__ import annotations

import asyncio

import pytest

from diver.config import load_settings
from diver.config.rerank import GroupwiseSettings
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage
from diver.stages.rerank.groupwise import rerank_groupwise

pytestmark = [pytest.mark.llm, pytest.mark.integration, pytest.mark.slow]

DOCS = {
    "pigeonhole": "Pigeonhole principle: if n items are put into m < n boxes, some box holds two items.",
    "bayes": "Bayes' theorem: P(A|B) = P(B|A) P(A) / P(B).",
    "fermat": "Fermat's little theorem: a^p = a (mod p) for a prime p.",
    "kraft": "Kraft inequality: sum of 2^-l_i <= 1 for a prefix code with lengths l_i.",
}


def test_one_groupwise_rerank_end_to_end(llama_server: str) -> None:
    settings = load_settings(llm={"cache": False, "reranker": {
        "base_url": llama_server, "model": "smollm2", "max_tokens": 96, "context_window": 4096, "timeout_s": 240,
        "max_retries": 0}})  # fmt: skip
    llm = ChatLLM(settings.llm.reranker, role="reranker")
    hits = [SearchHit(id=d, rank=i, score=1.0 - i / 10, title=d, highlight="") for i, d in enumerate(DOCS, 1)]
    usage = LLMUsage()
    group = GroupwiseSettings(group_size=4, interval=4, repeat_num=1, max_doc_chars=200, max_tokens=96)
    result = asyncio.run(rerank_groupwise(llm, "How many socks guarantee a matching pair?", hits, DOCS, group, usage))
    assert result.groups == 1 and result.calls + result.call_failures == 1
    assert usage.calls == result.calls and (usage.prompt_tokens > 0 or result.call_failures)
    assert sorted(result.order) == sorted(DOCS) and len(result.failures) == result.parse_failures + result.call_failures
    assert all(0.0 <= s <= 1.0 for s in result.group_scores.values())
    print({"parse_failures": result.parse_failures, "failures": result.failures, "scores": result.group_scores})
