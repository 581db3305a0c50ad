"""Query-assembly search over the typed interface: a fake ``SearchTarget`` with its context passed in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diver.config.index import FusionSettings
from diver.hits import SearchHit, SearchResult
from diver.stages.assembly_search import AssemblingRetriever, AssemblyTarget, search_assembled, with_assembly
from diver.stages.retriever import CollectionRetriever, search_with_expansions
from diver.text.documents import Document, make_document

DOCS = {"a": "alpha", "b": "beta", "c": "gamma"}


class Fake:
    """A ``SearchTarget``: every text ranks a, b, c with scores from its length; records the calls."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str, list[set[str]] | None, dict[str, Any]]] = []

    def search_many(self, queries: Sequence[str], k: int = 10, mode: str = "hybrid",
                    exclude: Sequence[set[str]] | None = None, **filters: Any) -> list[SearchResult]:  # fmt: skip
        self.calls.append((list(queries), mode, list(exclude) if exclude is not None else None, filters))
        out = []
        for i, text in enumerate(queries):
            skip = exclude[i] if exclude else set()
            ids = (
                [d for d in ("a", "b", "c") if d not in skip]
                if len(text) % 2
                else [d for d in ("c", "b", "a") if d not in skip]
            )
            hits = [SearchHit(id=d, rank=r, score=float(3 - r)) for r, d in enumerate(ids[:k], start=1)]
            out.append(
                SearchResult(
                    collection=self.name, query=text, mode=mode, k=k, hits=hits, notes=[f"{mode} ran"]
                )
            )  # type: ignore[arg-type]
        return out

    def get(self, doc_id: str) -> Document:
        return make_document(doc_id, DOCS[doc_id])


def target(fake: Fake, fits: bool = True, limit: int | None = None) -> AssemblyTarget:
    return AssemblyTarget(fake, FusionSettings(), limit, lambda text: fits)


def test_one_call_per_retriever_for_the_whole_batch() -> None:
    fake = Fake()
    results = search_assembled(target(fake), ["q1", "q2"], [["e1", "e2"], []], k=2, variant="separate",
                               exclude=[{"c"}, set()], where={"x": 1})  # fmt: skip
    assert [(texts, mode) for texts, mode, _, _ in fake.calls] == [
        (["q1", "e1", "e2", "q2"], "bm25"),
        (["q1", "e1", "e2", "q2"], "dense"),
    ]
    assert fake.calls[0][2] == [{"c"}, {"c"}, {"c"}, set()] and fake.calls[0][3] == {"where": {"x": 1}}
    assert [r.query for r in results] == ["q1", "q2"] and "c" not in [h.id for h in results[0].hits]
    assert results[0].notes == ["bm25 ran", "dense ran", "query assembly: separate (3 parts)"]
    assert results[1].notes[-1] == "query assembly: separate (1 parts)"
    assert set(results[0].hits[0].scores) == {"bm25", "dense"}


def test_single_text_plans_are_one_search_in_the_mode() -> None:
    fake = Fake()
    [result] = search_assembled(target(fake), ["q"], [["e"]], k=3, mode="hybrid", variant="concat")
    assert [(texts, mode) for texts, mode, _, _ in fake.calls] == [(["q\n\ne"], "hybrid")]
    assert result.query == "q" and result.notes == ["hybrid ran"]


def test_assembled_texts_are_cut_to_the_targets_limit() -> None:
    fake = Fake()
    [result] = search_assembled(
        target(fake, limit=12), ["q"], [["word " * 10]], k=3, variant="expansion_only"
    )
    assert fake.calls[0][0] == ["word word"]
    assert (
        "query assembly: an assembled text of 49 characters cut to 12 (limits.max_query_chars)"
        in result.notes
    )


def test_retrievers_with_and_without_assembly() -> None:
    fake = Fake()
    assembling = AssemblingRetriever(target(fake, fits=False), mode="dense", variant="fit", source="docs/")
    hits = search_with_expansions(assembling, "q", ["e"], 2)
    assert [c[:2] for c in fake.calls] == [(["e", "q"], "dense")] and fake.calls[0][3] == {"source": "docs/"}
    assert len(hits) == 2 and assembling.get_text("b") == "beta" and assembling.notes == ["dense ran"]
    plain = CollectionRetriever(fake)  # no engine: nothing to build a target from, QExpand's text
    assert with_assembly(plain, "separate") is plain and with_assembly(assembling) is assembling
