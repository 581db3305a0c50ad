"""Query assembly: retrieving with an original query plus LLM- or agent-written expansions so that every
part counts, whatever the lengths.

QExpand's format ("query, blank line, expansions") was built for 32k-token embedders: with a 256-token
embedder (MiniLM) a long query silently pushes the expansion past the cut, and in BM25 a long expansion
drowns the query's own terms. The variants:

* ``query``          the original query alone (the baseline; expansions ignored).
* ``concat``         QExpand's format, one text for every retriever (the reference's behaviour).
* ``expansion_only`` the expansions alone.
* ``separate``       each part (query, each expansion) retrieved on its own, the per-part score lists
                     min-max normalised and summed with weights (query ``query_weight``, expansions share
                     the rest), per retriever, then the retrievers fused as the collection does.
* ``balanced``       BM25 sees one text where the query is repeated until its terms weigh as much as the
                     expansions' (query2doc's trick, sized to the lengths); dense retrieves each part on
                     its own and fuses as ``separate`` does (no part is ever cut off by the embedder).
* ``fit``            (default) dense: QExpand's text when the whole fits the embedder's window, else the
                     expansions and the query embedded separately and fused (the query weighs
                     ``FIT_QUERY_WEIGHT``), so the reasoning is never cut off. BM25 (no length limit):
                     one text where the query's terms weigh ``FIT_QUERY_WEIGHT``, whatever the lengths.

Pure except for ``Collection.search_many`` calls (any object with that method works).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from diver.config.search import Assembly
from diver.errors import InputError
from diver.fusion import fuse_min_max, fuse_rrf, min_max_normalise, sort_scores
from diver.hits import SearchHit, SearchResult
from diver.text.queries import prepare_queries
from diver.text.tokens import approx_tokens

Variant = Assembly  # the setting search.assembly
VARIANTS: tuple[str, ...] = get_args(Assembly)
DEFAULT_VARIANT: Variant = "fit"
FIT_QUERY_WEIGHT = 0.25
"""``fit``: the query's share of BM25's text and of the dense fusion when the whole does not fit."""
"""Chosen by measurement on both offline TheoremQA sets (docs/mcp.md, 'Query assembly')."""
MAX_REPEAT = 16


def clean(expansions: Sequence[str] | None) -> list[str]:
    """Non-empty, stripped expansions (order kept, exact duplicates dropped)."""
    out: list[str] = []
    for text in expansions or []:
        if not isinstance(text, str):
            raise InputError(f"expansions must be strings, got {type(text).__name__}")
        if text.strip() and text.strip() not in out:
            out.append(text.strip())
    return out


def concat(query: str, expansions: Sequence[str]) -> str:
    """QExpand's format: original query, blank line, the expansions (blank-line separated)."""
    return "\n\n".join([query, *clean(expansions)])


def balanced_text(query: str, expansions: Sequence[str], query_weight: float = 0.5) -> str:
    """One BM25 text where the query's tokens make up about ``query_weight`` of all tokens: the query, or
    else the expansions, is repeated (at most ``MAX_REPEAT`` times) to reach that share whatever the
    lengths (BM25 sums a repeated query term once per occurrence)."""
    parts = clean(expansions)
    if not parts:
        return query
    q_tokens = max(1, approx_tokens(query))
    e_tokens = max(1, sum(approx_tokens(p) for p in parts))
    ratio = query_weight / max(1e-6, 1.0 - query_weight)  # wanted query tokens per expansion token
    if q_tokens / e_tokens < ratio:
        repeat = int(min(MAX_REPEAT, max(1, round(e_tokens * ratio / q_tokens))))
        return "\n\n".join([*([query] * repeat), *parts])
    repeat = int(min(MAX_REPEAT, max(1, round(q_tokens / (e_tokens * ratio)))))
    return "\n\n".join([query, *(parts * repeat)])


def part_weights(n_expansions: int, query_weight: float) -> list[float]:
    """Weight of the query, then of each expansion (the expansions share ``1 - query_weight``)."""
    if n_expansions == 0:
        return [1.0]
    return [query_weight] + [(1.0 - query_weight) / n_expansions] * n_expansions


def weighted_fuse(runs: Sequence[dict[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """Sum of min-max normalised scores times weights; a document absent from a run gets 0 there."""
    fused: dict[str, float] = {}
    for run, weight in zip(runs, weights, strict=True):
        for doc_id, score in min_max_normalise(run).items():
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * score
    return fused


def assembled_search(
    collection: Any,
    query: str,
    expansions: Sequence[str] | None = None,
    k: int = 10,
    mode: str = "hybrid",
    variant: str = DEFAULT_VARIANT,
    **kwargs: Any,
) -> SearchResult:
    """One query (see ``assembled_search_many``)."""
    return assembled_search_many(collection, [query], [expansions or []], k, mode, variant, **kwargs)[0]


def assembled_search_many(
    collection: Any,
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
    """Rank each query with its expansions. A query without expansions is searched as is (every variant).

    ``exclude``/``where``/``source`` go to every underlying search, so they act before any top-k cut."""
    if variant not in VARIANTS:
        raise InputError(f"query assembly must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if not 0.0 < query_weight < 1.0:
        raise InputError(f"query_weight must be within (0, 1), got {query_weight}")
    if len(expansions) != len(queries):
        raise InputError("one expansion list per query is needed")
    settings = getattr(getattr(collection, "engine", None), "settings", None)
    if settings is not None:  # the caller's query itself is refused when too long; only assembled texts are cut
        prepare_queries(queries, settings.limits.max_query_chars)
    parts = [clean(e) for e in expansions]
    exclude = list(exclude) if exclude is not None else [set() for _ in queries]
    filters = {key: value for key, value in (("where", where), ("source", source)) if value is not None}
    if variant == "fit" and mode == "dense" and all(_fits(collection, concat(q, p)) for q, p in zip(queries, parts, strict=True)):
        variant = "concat"  # identical to QExpand's retrieval when nothing would be cut
    if variant in ("query", "concat", "expansion_only") or not any(parts):
        texts = [_single_text(q, p, variant) for q, p in zip(queries, parts, strict=True)]
        texts, clipped = _clip(collection, texts)
        results = collection.search_many(texts, k=k, mode=mode, exclude=exclude, **filters)
        for result in results:
            result.notes.extend(clipped)
        for result, query in zip(results, queries, strict=True):
            result.query = query
        return results
    return _fused(collection, queries, parts, k, mode, variant, exclude, filters, query_weight)


def _single_text(query: str, parts: list[str], variant: str) -> str:
    if not parts or variant == "query":
        return query
    if variant == "expansion_only":
        return "\n\n".join(parts)
    return concat(query, parts)


def _clip(collection: Any, texts: list[str]) -> tuple[list[str], list[str]]:
    """Assembled texts cut to ``limits.max_query_chars`` at their end (the query comes first and is kept;
    repeats and the last expansions go): an LLM's long expansions must not fail the search."""
    settings = getattr(getattr(collection, "engine", None), "settings", None)
    limit = settings.limits.max_query_chars if settings is not None else None
    if not limit or all(len(t) <= limit for t in texts):
        return texts, []
    out = [t if len(t) <= limit else t[:limit].rsplit(None, 1)[0] for t in texts]
    longest = max(len(t) for t in texts)
    return out, [f"query assembly: an assembled text of {longest} characters cut to {limit} (limits.max_query_chars)"]


def _fits(collection: Any, text: str) -> bool:
    """Whether the embedder reads all of ``text`` (a query is embedded whole up to its window)."""
    embedder = getattr(getattr(collection, "engine", None), "embedder", None)
    budget = embedder.chunk_token_budget() if hasattr(embedder, "chunk_token_budget") else None
    if not budget:
        return True
    spanner = getattr(embedder, "spanner", None)
    count = len(spanner.token_spans(text)) if spanner is not None else approx_tokens(text)
    return count <= budget


def _parts(collection: Any, retriever: str, variant: str, query: str, parts: list[str],
           query_weight: float) -> tuple[list[str], list[float]]:  # fmt: skip
    """The texts one retriever searches for one query, and their fusion weights."""
    if not parts:
        return [query], [1.0]
    if variant == "balanced" and retriever == "bm25":
        return [balanced_text(query, parts, query_weight)], [1.0]
    if variant == "fit":
        if retriever == "bm25":
            return [balanced_text(query, parts, FIT_QUERY_WEIGHT)], [1.0]
        whole = concat(query, parts)
        if _fits(collection, whole):
            return [whole], [1.0]
        return ["\n\n".join(parts), query], [1.0 - FIT_QUERY_WEIGHT, FIT_QUERY_WEIGHT]
    return [query, *parts], part_weights(len(parts), query_weight)


def _fused(
    collection: Any,
    queries: Sequence[str],
    parts: list[list[str]],
    k: int,
    mode: str,
    variant: str,
    exclude: list[set[str]],
    filters: dict[str, Any],
    query_weight: float,
) -> list[SearchResult]:
    settings = collection.engine.settings
    fusion = settings.fusion
    pool = max(k, fusion.candidates)
    retrievers = ["bm25", "dense"] if mode == "hybrid" else [mode]
    # runs[retriever][i] = (per-part score lists, their weights, hits by id) for query i
    runs: dict[str, list[tuple[list[dict[str, float]], list[float], dict[str, SearchHit]]]] = {}
    notes: list[str] = []
    for retriever in retrievers:
        planned = [_parts(collection, retriever, variant, q, p, query_weight) for q, p in zip(queries, parts, strict=True)]
        flat = [t for texts, _ in planned for t in texts]
        flat_exclude = [ex for (texts, _), ex in zip(planned, exclude, strict=True) for _ in texts]
        flat, clipped = _clip(collection, flat)
        results = collection.search_many(flat, k=pool, mode=retriever, exclude=flat_exclude, **filters)
        notes.extend(n for n in clipped if n not in notes)
        notes.extend(n for r in results for n in r.notes if n not in notes)
        per_query = []
        offset = 0
        for texts, weights in planned:
            chunk = results[offset : offset + len(texts)]
            offset += len(texts)
            hits: dict[str, SearchHit] = {}
            for result in chunk:
                for hit in result.hits:
                    hits.setdefault(hit.id, hit)
            per_query.append(([{h.id: h.score for h in r.hits} for r in chunk], weights, hits))
        runs[retriever] = per_query
    out = []
    for i, query in enumerate(queries):
        per_retriever: dict[str, dict[str, float]] = {}
        hits: dict[str, SearchHit] = {}
        for retriever in retrievers:
            scores, weights, found = runs[retriever][i]
            per_retriever[retriever] = dict(sort_scores(weighted_fuse(scores, weights), pool))
            for doc_id, hit in found.items():
                hits.setdefault(doc_id, hit)
        if mode == "hybrid":
            dense, lexical = per_retriever["dense"], per_retriever["bm25"]
            if fusion.method == "rrf":
                fused = fuse_rrf(dense, lexical, k=fusion.rrf_k)
            else:
                fused = fuse_min_max(dense, lexical, fusion.w_dense)
        else:
            fused = per_retriever[mode]
        ranked = []
        for rank, (doc_id, score) in enumerate(sort_scores(fused, k), start=1):
            breakdown = {name: round(s[doc_id], 6) for name, s in per_retriever.items() if doc_id in s}
            ranked.append(
                hits[doc_id].model_copy(update={"rank": rank, "score": round(score, 6), "scores": breakdown})
            )
        out.append(
            SearchResult(
                collection=getattr(collection, "name", ""), query=query, mode=mode,  # type: ignore[arg-type]
                k=k, hits=ranked, notes=[*notes, f"query assembly: {variant} ({1 + len(parts[i])} parts)"],
            )  # fmt: skip
        )
    return out


class AssemblingRetriever:
    """A ``Retriever`` over a collection whose searches keep ``where``/``source`` filters and which can
    retrieve with expansions through query assembly (``search_expanded``, used by the QExpand stage)."""

    def __init__(self, collection: Any, mode: str = "hybrid", variant: str = DEFAULT_VARIANT,
                 where: dict[str, Any] | None = None, source: str | None = None) -> None:  # fmt: skip
        self.collection = collection
        self.mode = mode
        self.variant = variant
        self.where = where
        self.source = source
        self.name: str = getattr(collection, "name", "")
        self.notes: list[str] = []

    def search_expanded(self, query: str, expansions: Sequence[str], k: int) -> list[SearchHit]:
        result = assembled_search(self.collection, query, expansions, k=k, mode=self.mode, variant=self.variant,
                                  where=self.where, source=self.source)  # fmt: skip
        self.notes.extend(n for n in result.notes if n not in self.notes and not n.startswith("query assembly"))
        return list(result.hits)

    def search(self, query: str, k: int) -> list[SearchHit]:
        return self.search_expanded(query, [], k)

    def get_text(self, doc_id: str) -> str:
        return self.collection.get(doc_id).text


def search_with_expansions(
    retriever: Any, query: str, expansions: Sequence[str], k: int, variant: str = DEFAULT_VARIANT
) -> list[SearchHit]:
    """Retrieve for ``query`` + ``expansions`` with query assembly when ``retriever`` supports it (an
    ``AssemblingRetriever``, or any retriever over an engine collection), else with QExpand's text."""
    if hasattr(retriever, "search_expanded"):
        return list(retriever.search_expanded(query, expansions, k))
    collection = getattr(retriever, "collection", None)
    if collection is not None and hasattr(collection, "search_many") and hasattr(collection, "engine"):
        assembling = AssemblingRetriever(collection, mode=getattr(retriever, "mode", "hybrid"), variant=variant)
        return assembling.search_expanded(query, expansions, k)
    return list(retriever.search(concat(query, expansions), k))
