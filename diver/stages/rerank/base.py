"""The reranker interface: what one reranker module declares (``RerankerSpec``), what its run function
receives (``RerankRequest``) and returns (a ``RerankResult``).

A reranker is one module (plus its prompt files) that builds a ``RerankerSpec`` and registers it with
``diver.stages.rerank.registry.register``; the graph nodes, the merge, the MCP ``rerankers`` enum,
``diver eval`` and the docs table all come from the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from diver.config.rerank import RerankSettings
from diver.hits import SearchHit

ProgressFn = Callable[[int, int], None]
"""Called with (calls done, calls total)."""

NODE_PREFIX = "rerank_"


def node_name(name: str) -> str:
    """The graph node of reranker ``name`` (LangGraph refuses a node named like a state key)."""
    return NODE_PREFIX + name


class RerankResult(BaseModel):
    """What every reranker returns; subclasses add their own fields and override the hooks below."""

    order: list[str] = Field(description="The reranked candidates, best first.")

    def hit_scores(self, doc_id: str) -> dict[str, float]:
        """The columns this reranker adds to a hit's ``scores`` (none when it did not score ``doc_id``)."""
        return {}

    def blended(self) -> dict[str, float]:
        """Final scores when this reranker stands alone as a first pass (``default_weight`` None)."""
        return {}

    def parse_failure_count(self) -> int:
        """Replies that could not be parsed (``DeepSearchResult.parse_failures``)."""
        return 0

    def fell_back(self) -> bool:
        """True when the reranker produced no ranking and kept the prior order (``fallbacks``)."""
        return False


@dataclass(frozen=True)
class RerankRequest:
    """One reranker call: the query, its candidates (best first) and their texts, the settings."""

    query: str
    candidates: Sequence[SearchHit]
    texts: dict[str, str]
    settings: RerankSettings
    usage: Any  # diver.llm.client.LLMUsage: LLM calls are counted here
    llm: Any = None  # diver.llm.client.ChatLLM; None for a reranker that needs no LLM
    progress: ProgressFn | None = None
    position: Any = None  # groupwise_core.QueryPosition: this query's place in a run (diver eval), or None


def _no_notes(result: Any) -> list[str]:
    return []


def _always_available(settings: RerankSettings) -> str:
    return ""


def _doc_tokens(settings: RerankSettings) -> int:
    return settings.doc_tokens


@dataclass(frozen=True)
class RerankerSpec:
    """One reranker. ``run`` is async, or sync (then it runs in a worker thread); it returns ``result``.

    ``default_weight`` is its weight in the ``sum w * -ln(rank + 1)`` merge (overridable per name by
    ``rerank.weights``); None = not merged by rank but a first pass: the others rerank its top
    ``rerank.cross_encoder.llm_k`` and it orders the rest (alone, its ``blended()`` scores are final)."""

    name: str
    description: str
    run: Callable[[RerankRequest], Awaitable[RerankResult] | RerankResult]
    result: type[RerankResult] = RerankResult
    needs_llm: bool = True
    settings_section: str | None = None  # an attribute of ``settings.rerank``, when it has one
    default_weight: float | None = None
    text_limit: Callable[[RerankSettings], int] = _doc_tokens  # budget passed to ``document_texts``
    notes: Callable[[Any], list[str]] = _no_notes  # notes on a degraded run, from its result
    unavailable: Callable[[RerankSettings], str] = _always_available  # why it cannot run here ('' = it can)

    @property
    def node(self) -> str:
        return node_name(self.name)

    @property
    def first_pass(self) -> bool:
        return self.default_weight is None
