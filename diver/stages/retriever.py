"""The small retrieval interface the LLM stages need (plain, or with a query's expansions), and its adapter
over an engine ``Collection``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

from diver.hits import SearchHit
from diver.stages.assembly_plan import concat


@runtime_checkable
class Retriever(Protocol):
    """Ranked search plus full-text lookup; tests use fakes, production adapts a ``Collection``."""

    def search(self, query: str, k: int) -> list[SearchHit]: ...

    def get_text(self, doc_id: str) -> str: ...


@runtime_checkable
class ExpandingRetriever(Retriever, Protocol):
    """A ``Retriever`` that also ranks a query with its expansions (query assembly:
    ``diver.stages.assembly_search.AssemblingRetriever``)."""

    def search_expanded(self, query: str, expansions: Sequence[str], k: int) -> list[SearchHit]: ...


def search_with_expansions(
    retriever: Retriever, query: str, expansions: Sequence[str], k: int
) -> list[SearchHit]:
    """Retrieve for ``query`` + ``expansions``: with query assembly when ``retriever`` is an
    ``ExpandingRetriever``, else with QExpand's one text (``concat``)."""
    if isinstance(retriever, ExpandingRetriever):
        return list(retriever.search_expanded(query, expansions, k))
    return list(retriever.search(concat(query, expansions), k))


class CollectionRetriever:
    """``Retriever`` over ``diver.index.engine`` collections (hybrid search, full document text)."""

    def __init__(self, collection: Any, mode: str = "hybrid") -> None:
        self.collection = collection
        self.mode = mode
        self.name: str = getattr(collection, "name", "")
        self.notes: list[str] = []

    def search(self, query: str, k: int) -> list[SearchHit]:
        result = self.collection.search(query, k=k, mode=self.mode)
        self.notes.extend(note for note in result.notes if note not in self.notes)
        return list(result.hits)

    def get_text(self, doc_id: str) -> str:
        text: str = self.collection.get(doc_id).text
        return text


def as_retriever(obj: Any) -> Retriever:
    """Accept a ``Retriever`` as is, or adapt anything with ``search(query, k, mode)`` and ``get(id)``."""
    if hasattr(obj, "get_text") and hasattr(obj, "search"):
        return cast(Retriever, obj)
    if hasattr(obj, "search") and hasattr(obj, "get"):
        return CollectionRetriever(obj)
    raise TypeError(f"cannot use {type(obj).__name__} as a retriever (needs search() and get())")
