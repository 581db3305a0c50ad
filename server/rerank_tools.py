"""Reranker choice for ``deep_search``: the ``rerankers`` and ``rerank_weights`` arguments, and the local
cross-encoder applied to the agent-loop hits when no server LLM runs the pipeline."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from diver.config import DiverSettings
from diver.errors import ConfigError, DiverError
from diver.stages.rerank import registry
from diver.stages.rerank.choice import choose_rerankers
from diver.stages.rerank.cross_encoder import rerank_cross_encoder
from diver.stages.rerank.texts import document_texts
from diver.stages.retriever import as_retriever


class _RerankerName(str):
    """A registered reranker's name: the schema's enum is read from the registry when the server's tools
    are built (a reranker registered before ``build_server`` is listed); old spellings are accepted."""

    merged_only = False

    @classmethod
    def _names(cls) -> list[str]:
        return [s.name for s in registry.specs() if not (cls.merged_only and s.first_pass)]

    @classmethod
    def _check(cls, value: str) -> str:
        try:
            name = registry.get(value).name
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        if name not in cls._names():
            raise ValueError(f"{name!r} takes no merge weight; choose from {', '.join(cls._names())}")
        return name

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls._check, core_schema.str_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "enum": cls._names()}


class _MergedRerankerName(_RerankerName):
    merged_only = True


Rerankers = Annotated[
    list[_RerankerName] | None,
    Field(description="[] = none; default: pointwise+listwise with a server LLM, else a configured "
                      "cross-encoder (a first pass before LLM rerankers)."),
]  # fmt: skip
RerankWeights = Annotated[
    dict[_MergedRerankerName, Annotated[float, Field(ge=0, le=1)]] | None,
    Field(description="Merge weights of the rerankers' -ln(rank+1) (default 0.6/0.4/0.4 for pointwise/listwise/"
                      "groupwise)."),
]  # fmt: skip


def check_rerankers(settings: DiverSettings) -> None:
    """At server start-up: a ``ConfigError`` naming the registered rerankers when ``rerank.rerankers`` has
    an unknown name (rather than a failure on the first deep_search)."""
    registry.check(settings.rerank.rerankers)


def rerank_context(rerank: bool, rerankers: list[str] | None, weights: dict[str, float] | None) -> dict[str, Any]:
    """Run-context overrides of the deep-search graph for these arguments."""
    context: dict[str, Any] = {}
    if not rerank:
        context["rerankers"] = []
    elif rerankers is not None:
        context["rerankers"] = list(rerankers)
    if weights:
        context["rerank_weights"] = dict(weights)
    return context


def local_rerank(
    settings: DiverSettings, retriever: Any, query: str, hits: list[Any], rerank: bool, rerankers: list[str] | None
) -> tuple[list[Any], list[str], str, list[str]]:
    """Without a server LLM: the cross-encoder reranks the agent-loop hits when chosen (blocking).

    Returns (hits, rerankers that ran, why, notes)."""
    asked = [] if not rerank else rerankers
    choice = choose_rerankers(settings.rerank.model_copy(update={"rerankers": asked}), has_llm=False)
    if "cross_encoder" not in choice.names:
        return hits, [], choice.why, choice.skipped
    rerank_k = settings.rerank.rerank_k
    head, tail = hits[:rerank_k], hits[rerank_k:]
    try:
        texts = document_texts(head, as_retriever(retriever).get_text, settings.rerank.cross_encoder.doc_chars)
        result = rerank_cross_encoder(query, head, texts, settings.rerank.cross_encoder, settings.rerank.pointwise_mode)
    except DiverError as exc:
        return hits, [], choice.why, [*choice.skipped, f"rerank cross_encoder failed: {exc}"]
    by_id = {h.id: h for h in head}
    ranked = [
        by_id[d].model_copy(update={"score": result.combined[d],
                                    "scores": {**by_id[d].scores, "hybrid": by_id[d].score,
                                               "cross_encoder_model": result.model_scores[d]}})
        for d in result.order
    ]  # fmt: skip
    return [h.model_copy(update={"rank": i}) for i, h in enumerate(ranked + tail, 1)], ["cross_encoder"], \
        choice.why, choice.skipped
