"""Query assembly, the searching half: what assembly searches over (``SearchTarget``, with its context
passed in an ``AssemblyTarget``), the executor of ``diver.stages.assembly_plan``'s plans, and the
``AssemblingRetriever`` the QExpand rounds search with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from diver.config import DiverSettings
from diver.config.index import FusionSettings
from diver.fusion import fuse_min_max, fuse_rrf, min_max_normalise, sort_scores
from diver.hits import SearchHit, SearchMode, SearchResult
from diver.stages.assembly_plan import DEFAULT_VARIANT, AssemblyPlan, QueryPlan, RetrieverName, plan_assembly
from diver.stages.retriever import CollectionRetriever, ExpandingRetriever, Retriever
from diver.text.documents import Document, TokenSpanner


class SearchTarget(Protocol):
    """What query assembly searches over: an engine ``Collection`` or its engine-process proxy
    (``diver.service.client.RemoteCollection``)."""

    @property
    def name(self) -> str: ...

    def search_many(self, queries: Sequence[str], k: int = ..., mode: SearchMode = ...,
                    exclude: Sequence[set[str]] | None = ..., where: dict[str, Any] | None = ...,
                    source: str | None = ...) -> list[SearchResult]: ...  # fmt: skip

    def get(self, doc_id: str) -> Document: ...


class EngineView(Protocol):
    """The part of an engine (in-process or remote) assembly reads: its settings and its embedder."""

    @property
    def settings(self) -> DiverSettings: ...

    @property
    def embedder(self) -> Any: ...


@runtime_checkable
class EngineCollection(SearchTarget, Protocol):
    """A ``SearchTarget`` that knows its engine (both collection kinds do)."""

    @property
    def engine(self) -> EngineView: ...


@runtime_checkable
class WindowedEmbedder(Protocol):
    """An embedder that says how many of its spanner's tokens it reads (None or 0: no limit)."""

    @property
    def spanner(self) -> TokenSpanner: ...

    def chunk_token_budget(self) -> int | None: ...


def window_fits(engine: EngineView) -> Callable[[str], bool]:
    """``fits(text)``: whether ``engine``'s embedder reads all of ``text`` (a query is embedded whole up to
    its window). The embedder is looked up on the first call (loading it costs)."""
    found: list[Any] = []

    def fits(text: str) -> bool:
        if not found:
            found.append(engine.embedder)
        embedder = found[0]
        if not isinstance(embedder, WindowedEmbedder):
            return True
        budget = embedder.chunk_token_budget()
        return not budget or len(embedder.spanner.token_spans(text)) <= budget

    return fits


@dataclass(frozen=True)
class AssemblyTarget:
    """A ``SearchTarget`` and the context assembly needs of it: the hybrid fusion settings, the length an
    assembled text is cut to (None: never cut, queries not checked), and the embedder window's ``fits``."""

    collection: SearchTarget
    fusion: FusionSettings
    max_query_chars: int | None
    fits: Callable[[str], bool]

    @property
    def name(self) -> str:
        return self.collection.name

    @classmethod
    def for_collection(cls, collection: EngineCollection) -> AssemblyTarget:
        """The target over an engine collection, with its engine's settings and embedder."""
        engine = collection.engine
        settings = engine.settings
        return cls(collection, settings.fusion, settings.limits.max_query_chars, window_fits(engine))


def weighted_fuse(runs: Sequence[dict[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """Sum of min-max normalised scores times weights; a document absent from a run gets 0 there."""
    fused: dict[str, float] = {}
    for run, weight in zip(runs, weights, strict=True):
        for doc_id, score in min_max_normalise(run).items():
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * score
    return fused


def search_assembled(
    target: AssemblyTarget,
    queries: Sequence[str],
    expansions: Sequence[Sequence[str]],
    k: int = 10,
    mode: str = "hybrid",
    variant: str = DEFAULT_VARIANT,
    exclude: Sequence[set[str]] | None = None,
    where: dict[str, Any] | None = None,
    source: str | None = None,
    query_weight: float = 0.5,
) -> list[SearchResult]:
    """Rank each query with its expansions (one list per query; see ``assembly_plan``). ``exclude``,
    ``where`` and ``source`` go to every underlying search, so they act before any top-k cut."""
    plan = plan_assembly(
        queries, expansions, variant, mode, target.fits, query_weight, target.max_query_chars
    )
    return run_plan(target, plan, k, exclude, where, source)


def run_plan(target: AssemblyTarget, plan: AssemblyPlan, k: int, exclude: Sequence[set[str]] | None = None,
             where: dict[str, Any] | None = None, source: str | None = None) -> list[SearchResult]:  # fmt: skip
    """Search ``plan``: a single-text plan in one ``search_many`` call in its mode, a fused plan in one call
    per retriever (every query's parts together), fused here."""
    excluded = list(exclude) if exclude is not None else [set() for _ in plan.queries]
    filters: dict[str, Any] = {
        key: value for key, value in (("where", where), ("source", source)) if value is not None
    }
    if plan.kind == "single":
        texts, clipped = clip(plan.single_texts(), target.max_query_chars)
        results = target.collection.search_many(texts, k=k, mode=plan.mode, exclude=excluded, **filters)
        for result, query in zip(results, plan.queries, strict=True):
            result.notes.extend(clipped)
            result.query = query.query
        return results
    return _fused(target, plan, k, excluded, filters)


def clip(texts: list[str], limit: int | None) -> tuple[list[str], list[str]]:
    """Assembled texts cut to ``limit`` (limits.max_query_chars) at their end (the query comes first and is
    kept; repeats and the last expansions go): an LLM's long expansions must not fail the search."""
    if not limit or all(len(t) <= limit for t in texts):
        return texts, []
    out = [t if len(t) <= limit else t[:limit].rsplit(None, 1)[0] for t in texts]
    longest = max(len(t) for t in texts)
    return out, [
        f"query assembly: an assembled text of {longest} characters cut to {limit} (limits.max_query_chars)"
    ]


# per query: (per-part score lists, their weights, hits by id) of one retriever
_Runs = list[tuple[list[dict[str, float]], list[float], dict[str, SearchHit]]]


def _fused(target: AssemblyTarget, plan: AssemblyPlan, k: int, exclude: list[set[str]],
           filters: dict[str, Any]) -> list[SearchResult]:  # fmt: skip
    pool = max(k, target.fusion.candidates)
    runs: dict[RetrieverName, _Runs] = {}
    notes: list[str] = []
    for retriever in plan.retrievers:
        runs[retriever] = _retriever_runs(target, plan.queries, retriever, pool, exclude, filters, notes)
    out = []
    for i, query in enumerate(plan.queries):
        per_retriever: dict[str, dict[str, float]] = {}
        hits: dict[str, SearchHit] = {}
        for retriever in plan.retrievers:
            scores, weights, found = runs[retriever][i]
            per_retriever[retriever] = dict(sort_scores(weighted_fuse(scores, weights), pool))
            for doc_id, hit in found.items():
                hits.setdefault(doc_id, hit)
        ranked = _ranked(_combine(per_retriever, plan.mode, target.fusion), per_retriever, hits, k)
        out.append(
            SearchResult(
                collection=target.name,
                query=query.query,
                mode=plan.mode,
                k=k,
                hits=ranked,
                notes=[*notes, f"query assembly: {plan.variant} ({query.n_parts} parts)"],
            )  # fmt: skip
        )
    return out


def _retriever_runs(target: AssemblyTarget, queries: Sequence[QueryPlan], retriever: RetrieverName, pool: int,
                    exclude: list[set[str]], filters: dict[str, Any], notes: list[str]) -> _Runs:  # fmt: skip
    """One ``search_many`` call with every query's parts for ``retriever``; the notes are added to ``notes``."""
    planned = [q.searches[retriever] for q in queries]
    flat = [p.text for parts in planned for p in parts]
    flat_exclude = [ex for parts, ex in zip(planned, exclude, strict=True) for _ in parts]
    flat, clipped = clip(flat, target.max_query_chars)
    results = target.collection.search_many(flat, k=pool, mode=retriever, exclude=flat_exclude, **filters)
    notes.extend(n for n in clipped if n not in notes)
    notes.extend(n for r in results for n in r.notes if n not in notes)
    runs: _Runs = []
    offset = 0
    for parts in planned:
        chunk = results[offset : offset + len(parts)]
        offset += len(parts)
        hits: dict[str, SearchHit] = {}
        for result in chunk:
            for hit in result.hits:
                hits.setdefault(hit.id, hit)
        runs.append(([{h.id: h.score for h in r.hits} for r in chunk], [p.weight for p in parts], hits))
    return runs


def _combine(
    per_retriever: dict[str, dict[str, float]], mode: SearchMode, fusion: FusionSettings
) -> dict[str, float]:
    """The retrievers' fused scores combined as the collection combines them in ``mode``."""
    if mode != "hybrid":
        return per_retriever[mode]
    dense, lexical = per_retriever["dense"], per_retriever["bm25"]
    if fusion.method == "rrf":
        return fuse_rrf(dense, lexical, k=fusion.rrf_k)
    return fuse_min_max(dense, lexical, fusion.w_dense, fusion.missing)


def _ranked(fused: dict[str, float], per_retriever: dict[str, dict[str, float]], hits: dict[str, SearchHit],
            k: int) -> list[SearchHit]:  # fmt: skip
    ranked = []
    for rank, (doc_id, score) in enumerate(sort_scores(fused, k), start=1):
        breakdown = {name: round(s[doc_id], 6) for name, s in per_retriever.items() if doc_id in s}
        ranked.append(
            hits[doc_id].model_copy(update={"rank": rank, "score": round(score, 6), "scores": breakdown})
        )
    return ranked


class AssemblingRetriever:
    """A ``Retriever`` over a target whose searches keep ``where``/``source`` filters and which ranks a
    query with expansions through query assembly in ``variant`` (an ``ExpandingRetriever``)."""

    def __init__(self, target: AssemblyTarget | EngineCollection, mode: str = "hybrid",
                 variant: str = DEFAULT_VARIANT, where: dict[str, Any] | None = None,
                 source: str | None = None) -> None:  # fmt: skip
        self.target = target if isinstance(target, AssemblyTarget) else AssemblyTarget.for_collection(target)
        self.collection = self.target.collection  # the engine collection (dense feedback searches it)
        self.mode = mode
        self.variant = variant
        self.where = where
        self.source = source
        self.name: str = self.target.name
        self.notes: list[str] = []

    def search_expanded(self, query: str, expansions: Sequence[str], k: int) -> list[SearchHit]:
        [result] = search_assembled(self.target, [query], [expansions], k=k, mode=self.mode, variant=self.variant,
                                    where=self.where, source=self.source)  # fmt: skip
        self.notes.extend(
            n for n in result.notes if n not in self.notes and not n.startswith("query assembly")
        )
        return list(result.hits)

    def search(self, query: str, k: int) -> list[SearchHit]:
        return self.search_expanded(query, [], k)

    def get_text(self, doc_id: str) -> str:
        return self.target.collection.get(doc_id).text


def with_assembly(retriever: Retriever | EngineCollection, variant: str = DEFAULT_VARIANT) -> Retriever:
    """``retriever`` able to search with expansions where it can be: an engine collection, or a
    ``CollectionRetriever`` over one, becomes an ``AssemblingRetriever`` in ``variant`` (same mode); any
    other retriever is returned as is (``search_with_expansions`` gives it QExpand's one text)."""
    if isinstance(retriever, ExpandingRetriever):
        return retriever
    if isinstance(retriever, CollectionRetriever) and isinstance(retriever.collection, EngineCollection):
        return AssemblingRetriever(retriever.collection, mode=retriever.mode, variant=variant)
    if isinstance(retriever, EngineCollection):
        return AssemblingRetriever(retriever, variant=variant)
    return retriever
