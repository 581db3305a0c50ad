"""Reranker budgets as the reference: GroupRank's 8000-token replies and 3,000-character documents, one
listwise call when the candidates fit the window the endpoint reports (vLLM /v1/models max_model_len)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest
from openai_recorder import RecordingServer

from diver.config import GroupwiseSettings, ModelSettings, RerankSettings
from diver.hits import SearchHit
from diver.llm.client import ChatLLM, LLMUsage
from diver.llm.context import forget_context_windows
from diver.stages.rerank.groupwise import rerank_groupwise
from diver.stages.rerank.listwise import rerank_listwise

pytest.importorskip("langchain_openai")


@pytest.fixture(autouse=True)
def _fresh_windows() -> Iterator[None]:
    forget_context_windows()
    yield
    forget_context_windows()


def group_reply(prompt: str) -> str:
    count = int(re.search(r"provide you (\d+) documents", prompt).group(1))
    scores = {f"[{i}]": 10 - i % 10 for i in range(1, count + 1)}
    return "<reason>" + "long reasoning " * 50 + "</reason>\n<answer>\n```json\n" + json.dumps(scores) + "\n```\n</answer>"


def list_reply(prompt: str) -> str:
    count = len(re.findall(r"^\[\d+\] <document>", prompt, flags=re.M))
    return "```json\n" + json.dumps({"ranking": list(range(count, 0, -1))}) + "\n```"


def candidates(n: int, lengths: list[int]) -> tuple[list[SearchHit], dict[str, str]]:
    hits = [SearchHit(id=f"doc-{i}", rank=i + 1, score=1 - i / n, title="", highlight="") for i in range(n)]
    words = "theorem prime lemma ∑ résumé 12345 graph flow\n"
    texts = {h.id: f"{h.id} " + (words * (lengths[i % len(lengths)] // len(words) + 1))[: lengths[i % len(lengths)]]
             for i, h in enumerate(hits)}  # fmt: skip
    return hits, texts


def sent_max_tokens(body: dict) -> int:
    return int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


def test_groupwise_asks_8000_tokens_and_sends_3000_character_documents() -> None:
    hits, texts = candidates(20, [9000, 4200, 800, 12000])  # uneven lengths, most over 3,000 characters
    with RecordingServer(group_reply, max_model_len=32000) as server:
        llm = ChatLLM(ModelSettings(base_url=server.base_url, model="scripted", max_retries=0), role="reranker")
        result = asyncio.run(
            rerank_groupwise(llm, "which theorem?", hits, texts, GroupwiseSettings(repeat_num=1), LLMUsage())
        )
    assert result.groups == 2 and result.parse_failures == 0
    assert [sent_max_tokens(b) for b in server.bodies] == [8000, 8000]
    assert result.doc_chars == 3000
    for prompt in server.prompts:
        bodies = re.findall(r"\]\. <document>\n(.*?)\n</document>", prompt, flags=re.S)
        assert len(bodies) == 10
        assert sorted(len(b) for b in bodies) == sorted(
            min(3000, len(texts[d].replace("\n", " "))) for d in re.findall(r"<document>\n(doc-\d+) ", prompt)
        )
        assert max(len(b) for b in bodies) == 3000  # the long ones cut at the reference's 3,000


def test_groupwise_keeps_3000_characters_when_the_window_is_unknown() -> None:
    hits, texts = candidates(10, [5000])
    with RecordingServer(group_reply) as server:  # /v1/models without max_model_len
        llm = ChatLLM(ModelSettings(base_url=server.base_url, model="scripted", max_retries=0), role="reranker")
        result = asyncio.run(
            rerank_groupwise(llm, "q", hits, texts, GroupwiseSettings(repeat_num=1), LLMUsage())
        )
    assert result.doc_chars == 3000 and sent_max_tokens(server.bodies[0]) == 8000


def test_listwise_one_call_when_the_endpoint_reports_a_long_window() -> None:
    hits, texts = candidates(100, [2500, 600, 4000, 1200])
    with RecordingServer(list_reply, max_model_len=131072) as server:
        llm = ChatLLM(ModelSettings(base_url=server.base_url, model="scripted", max_retries=0), role="reranker")
        result = asyncio.run(rerank_listwise(llm, "q", hits, texts, RerankSettings(), LLMUsage()))
        assert server.model_queries == 1
        asyncio.run(rerank_listwise(llm, "q", hits, texts, RerankSettings(), LLMUsage()))
        assert server.model_queries == 1  # asked once per endpoint and model
    assert result.windows == 1 and result.calls == 1 and len(server.bodies) == 2
    assert result.context_window == 131072 and result.context_source.startswith("endpoint")
    assert all(f"doc-{i} " in server.prompts[0] for i in range(100))
    assert result.order == [h.id for h in reversed(hits)]


def test_listwise_windows_when_the_window_is_small_or_unreported() -> None:
    hits, texts = candidates(100, [2500, 600, 4000, 1200])
    with RecordingServer(list_reply) as server:
        llm = ChatLLM(ModelSettings(base_url=server.base_url, model="scripted", max_retries=0), role="reranker")
        result = asyncio.run(rerank_listwise(llm, "q", hits, texts, RerankSettings(), LLMUsage()))
    assert result.windows > 1 and result.context_window == 8192 and result.context_source.startswith("default")
    with RecordingServer(list_reply, max_model_len=131072) as server:  # the setting wins over the endpoint
        settings = ModelSettings(base_url=server.base_url, model="scripted", max_retries=0, context_window=16384)
        llm = ChatLLM(settings, role="reranker")
        result = asyncio.run(rerank_listwise(llm, "q", hits, texts, RerankSettings(), LLMUsage()))
    assert result.windows > 1 and result.context_window == 16384 and server.model_queries == 0


def test_groupwise_reply_budget_leaves_room_in_a_small_reported_window() -> None:
    hits, texts = candidates(10, [5000])
    with RecordingServer(group_reply, max_model_len=8192) as server:
        llm = ChatLLM(ModelSettings(base_url=server.base_url, model="scripted", max_retries=0), role="reranker")
        result = asyncio.run(rerank_groupwise(llm, "q", hits, texts, GroupwiseSettings(repeat_num=1), LLMUsage()))
    assert sent_max_tokens(server.bodies[0]) == 4096  # half the window, not 8000 of 8192
    assert 64 <= result.doc_chars < 3000  # the documents shrink to fit the rest
