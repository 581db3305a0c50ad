"""Fake chat models (langchain-core) and a fake retriever for the LLM-stage and graph tests."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from diver.config import ModelSettings
from diver.hits import SearchHit
from diver.llm.client import ChatLLM


class ScriptedChatModel(BaseChatModel):
    """Replies ``reply(prompt_text)``; a reply that is an exception is raised. Records every prompt."""

    reply: Callable[[str], Any]
    prompts: list[str] = []
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        self.prompts.append(prompt)
        out = self.reply(prompt)
        if isinstance(out, BaseException):
            raise out
        message = out if isinstance(out, AIMessage) else AIMessage(content=str(out))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return self._result(messages)

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return self._result(messages)
        finally:
            self.in_flight -= 1


def scripted_llm(
    reply: Callable[[str], Any], role: str = "reranker", **settings: Any
) -> tuple[ChatLLM, ScriptedChatModel]:
    model = ScriptedChatModel(reply=reply, prompts=[])
    values = {"model": "fake", "max_retries": 0, **settings}
    return ChatLLM(ModelSettings(**values), role=role, factory=lambda _s: model), model


class StatusError(Exception):
    """Looks like an openai APIStatusError (status_code, response.headers)."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, message: str = "boom") -> None:
        super().__init__(message)
        self.status_code = status
        self.response = type("Response", (), {"headers": headers or {}})()


_WORD = re.compile(r"\w+")


class FakeRetriever:
    """Word-overlap search over a dict of documents (deterministic, query-dependent)."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.docs = docs
        self.queries: list[str] = []

    def search(self, query: str, k: int) -> list[SearchHit]:
        self.queries.append(query)
        words = set(_WORD.findall(query.lower()))
        scored = []
        for doc_id, text in self.docs.items():
            overlap = len(words & set(_WORD.findall(text.lower())))
            scored.append((overlap + 1.0 / (1 + len(text)), doc_id))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [
            SearchHit(id=d, rank=r, score=s, title=self.docs[d][:30], highlight=self.docs[d][:80])
            for r, (s, d) in enumerate(scored[:k], 1)
        ]

    def get_text(self, doc_id: str) -> str:
        return self.docs[doc_id]
