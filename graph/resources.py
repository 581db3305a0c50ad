"""Where the graph's nodes get their settings, retriever and LLMs for one run.

The compiled module-level graph uses ``Provider()``: settings from ``load_settings()`` (DIVER_* env,
DIVER_CONFIG), the collection named in the run context opened through ``diver.index.engine.Engine``. Python
callers and tests build a graph over a ``Provider`` holding their own settings, retriever or chat factory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diver.config import DiverSettings, load_settings
from diver.errors import InputError
from diver.graph.context import Context, apply_context
from diver.llm.client import ChatFactory, ChatLLM, build_llm
from diver.stages.assembly_search import with_assembly
from diver.stages.retriever import Retriever, as_retriever

RetrieverFactory = Callable[[DiverSettings, Context], Retriever]


ROLE_MODELS = ("pointwise", "listwise")
"""Rerankers that may have their own model (``llm.<name>``); the others use ``llm.reranker``."""


@dataclass
class Resources:
    settings: DiverSettings
    retriever: Retriever
    expander: ChatLLM | None
    reranker: ChatLLM | None
    role_llms: dict[str, ChatLLM] = field(default_factory=dict)

    def llm_for(self, reranker: str) -> ChatLLM | None:
        """The model of ``reranker``: its own (``llm.pointwise`` / ``llm.listwise``) when one is set."""
        return self.role_llms.get(reranker, self.reranker)


_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()


def open_collection_retriever(settings: DiverSettings, ctx: Context) -> Retriever:
    """The named collection of ``settings.data_dir`` (engines are opened once per process and data dir)."""
    if not ctx.collection:
        raise InputError("no collection given: set 'collection' in the run context")
    from diver.service import open_engine

    key = settings.model_dump_json(
        include={"data_dir", "cache_dir", "embedding", "chunking", "bm25", "store"}
    )
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = open_engine(settings)
    return as_retriever(engine.collection(ctx.collection))


class Provider:
    """Resolves the resources of a run from its context; what is given here overrides the defaults."""

    def __init__(
        self,
        *,
        settings: DiverSettings | None = None,
        retriever: Retriever | Any | None = None,
        retriever_factory: RetrieverFactory | None = None,
        chat_factory: ChatFactory | None = None,
    ) -> None:
        self._settings = settings
        self._retriever = as_retriever(retriever) if retriever is not None else None
        self._retriever_factory = retriever_factory or open_collection_retriever
        self._chat_factory = chat_factory

    def settings(self, ctx: Context) -> DiverSettings:
        base = self._settings if self._settings is not None else _default_settings()
        return apply_context(base, ctx)

    def resolve(self, ctx: Context) -> Resources:
        """The run's resources; a retriever over an engine collection searches the rounds' expansions with
        query assembly in ``search.assembly`` (any other gets QExpand's one text)."""
        settings = self.settings(ctx)
        retriever = with_assembly(
            self._retriever or self._retriever_factory(settings, ctx), settings.search.assembly
        )
        return Resources(
            settings=settings,
            retriever=retriever,
            expander=build_llm(settings, "expander", self._chat_factory),
            reranker=build_llm(settings, "reranker", self._chat_factory),
            role_llms={role: llm for role in ROLE_MODELS
                       if (llm := build_llm(settings, role, self._chat_factory)) is not None},  # fmt: skip
        )


_DEFAULT: list[DiverSettings] = []


def _default_settings() -> DiverSettings:
    if not _DEFAULT:
        _DEFAULT.append(load_settings())
    return _DEFAULT[0]
