"""Query assembly over an engine collection: the entry points that take the collection itself, and the
names of ``diver.stages.assembly_plan`` (planning, pure) and ``diver.stages.assembly_search`` (searching).

New code builds ``AssemblyTarget.for_collection(collection)`` once and calls ``search_assembled``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diver.hits import SearchHit, SearchResult
from diver.stages import retriever as _retriever
from diver.stages.assembly_plan import (
    DEFAULT_VARIANT,
    FIT_QUERY_WEIGHT,
    MAX_REPEAT,
    VARIANTS,
    Variant,
    balanced_text,
    clean,
    concat,
    part_weights,
)
from diver.stages.assembly_search import (
    AssemblingRetriever,
    AssemblyTarget,
    EngineCollection,
    search_assembled,
    weighted_fuse,
    with_assembly,
)

__all__ = [
    "DEFAULT_VARIANT", "FIT_QUERY_WEIGHT", "MAX_REPEAT", "VARIANTS", "AssemblingRetriever", "Variant",
    "assembled_search", "assembled_search_many", "balanced_text", "clean", "concat", "part_weights",
    "search_with_expansions", "weighted_fuse",
]  # fmt: skip


def assembled_search(collection: EngineCollection, query: str, expansions: Sequence[str] | None = None,
                     k: int = 10, mode: str = "hybrid", variant: str = DEFAULT_VARIANT,
                     **kwargs: Any) -> SearchResult:  # fmt: skip
    """One query (see ``assembled_search_many``)."""
    return assembled_search_many(collection, [query], [expansions or []], k, mode, variant, **kwargs)[0]


def assembled_search_many(collection: EngineCollection, queries: Sequence[str], expansions: Sequence[Sequence[str]],
                          k: int = 10, mode: str = "hybrid", variant: str = DEFAULT_VARIANT,
                          **kwargs: Any) -> list[SearchResult]:  # fmt: skip
    """``search_assembled`` over ``collection`` (``exclude``, ``where``, ``source``, ``query_weight``)."""
    return search_assembled(
        AssemblyTarget.for_collection(collection), queries, expansions, k, mode, variant, **kwargs
    )


def search_with_expansions(retriever: Any, query: str, expansions: Sequence[str], k: int,
                           variant: str = DEFAULT_VARIANT) -> list[SearchHit]:  # fmt: skip
    """``diver.stages.retriever.search_with_expansions`` after ``with_assembly(retriever, variant)``: a
    retriever over an engine collection searches with query assembly, any other with QExpand's text."""
    return _retriever.search_with_expansions(with_assembly(retriever, variant), query, expansions, k)


def _fits(collection: EngineCollection, text: str) -> bool:
    """Whether the collection's embedder reads all of ``text``."""
    return AssemblyTarget.for_collection(collection).fits(text)
