"""Query assembly, the planning half: which texts each retriever searches for a query and its LLM- or
agent-written expansions, and with which fusion weights, so that every part counts whatever the lengths.

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

Pure: no collection and no embedder; whether a text fits the embedder's window is the caller's ``fits``.
``diver.stages.assembly_search`` runs the plans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from diver.config.search import Assembly
from diver.errors import InputError
from diver.hits import SearchMode
from diver.text.queries import prepare_queries
from diver.text.tokens import approx_tokens

Variant = Assembly  # the setting search.assembly
VARIANTS: tuple[str, ...] = get_args(Assembly)
DEFAULT_VARIANT: Variant = "fit"
FIT_QUERY_WEIGHT = 0.25
"""``fit``: the query's share of BM25's text and of the dense fusion when the whole does not fit."""
"""Chosen by measurement on both offline TheoremQA sets (docs/mcp.md, 'Query assembly')."""
MAX_REPEAT = 16
SINGLE_TEXT_VARIANTS: tuple[Variant, ...] = ("query", "concat", "expansion_only")

RetrieverName = Literal["bm25", "dense"]
RETRIEVERS: dict[str, tuple[RetrieverName, ...]] = {
    "bm25": ("bm25",),
    "dense": ("dense",),
    "hybrid": ("bm25", "dense"),
}
PlanKind = Literal["single", "fused"]


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


@dataclass(frozen=True)
class Part:
    """One text a retriever searches, and the weight of its min-max normalised scores in the fusion."""

    text: str
    weight: float = 1.0


@dataclass(frozen=True)
class QueryPlan:
    """One query: its cleaned expansions, and for each retriever of the mode the parts it searches."""

    query: str
    expansions: tuple[str, ...]
    searches: Mapping[RetrieverName, tuple[Part, ...]]

    @property
    def n_parts(self) -> int:
        """The query plus its expansions (what the fused result's note counts)."""
        return 1 + len(self.expansions)


@dataclass(frozen=True)
class AssemblyPlan:
    """How a batch of queries is searched.

    ``kind == "single"``: every query has one text (the same for each retriever, weight 1), all searched
    in one ``search_many`` call in ``mode``, so the collection's own hybrid fusion applies.
    ``kind == "fused"``: each retriever searches its parts on its own (all queries' parts in one call per
    retriever); the parts' scores are fused with their weights, then the retrievers as the collection does.
    ``variant`` is the variant used (``fit`` in dense mode is ``concat`` when every whole text fits; a
    batch without any expansion is ``query``)."""

    variant: Variant
    mode: SearchMode
    kind: PlanKind
    queries: tuple[QueryPlan, ...]

    @property
    def retrievers(self) -> tuple[RetrieverName, ...]:
        return RETRIEVERS[self.mode]

    def single_texts(self) -> list[str]:
        """Each query's one text (``kind == "single"`` only)."""
        if self.kind != "single":
            raise ValueError("a fused plan has no single text per query")
        return [q.searches[self.retrievers[0]][0].text for q in self.queries]


def check_request(queries: Sequence[str], expansions: Sequence[Sequence[str]], variant: str,
                  query_weight: float, max_query_chars: int | None = None) -> None:  # fmt: skip
    """Refuse an unknown variant, a weight outside (0, 1), a missing expansion list, and (with
    ``max_query_chars``) a query the collection would refuse: only assembled texts are ever cut."""
    if variant not in VARIANTS:
        raise InputError(f"query assembly must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if not 0.0 < query_weight < 1.0:
        raise InputError(f"query_weight must be within (0, 1), got {query_weight}")
    if len(expansions) != len(queries):
        raise InputError("one expansion list per query is needed")
    if max_query_chars is not None:
        prepare_queries(queries, max_query_chars)


def plan_assembly(
    queries: Sequence[str],
    expansions: Sequence[Sequence[str]],
    variant: str = DEFAULT_VARIANT,
    mode: str = "hybrid",
    fits: Callable[[str], bool] = lambda text: True,
    query_weight: float = 0.5,
    max_query_chars: int | None = None,
) -> AssemblyPlan:
    """The plan for each query with its expansions (one list per query). ``fits(text)``: whether the dense
    embedder reads all of ``text`` (asked only for ``fit`` with a dense retriever). A batch where no query
    has expansions is searched as is, whatever the variant."""
    check_request(queries, expansions, variant, query_weight, max_query_chars)
    parts = [clean(e) for e in expansions]
    if mode not in RETRIEVERS:
        raise InputError(f"mode must be one of bm25, dense, hybrid; got {mode!r}")
    chosen = cast(Variant, variant)
    search_mode = cast(SearchMode, mode)
    whole_fits = _memo(fits)
    if not any(parts):
        chosen = "query"
    elif (
        chosen == "fit"
        and mode == "dense"
        and all(whole_fits(concat(q, p)) for q, p in zip(queries, parts, strict=True))
    ):
        chosen = "concat"  # identical to QExpand's retrieval when nothing would be cut
    if chosen in SINGLE_TEXT_VARIANTS:
        single = [
            QueryPlan(q, tuple(p), {r: (Part(_single_text(q, p, chosen)),) for r in RETRIEVERS[mode]})
            for q, p in zip(queries, parts, strict=True)
        ]
        return AssemblyPlan(chosen, search_mode, "single", tuple(single))
    fused = [
        QueryPlan(
            q, tuple(p), {r: _parts(r, chosen, q, p, query_weight, whole_fits) for r in RETRIEVERS[mode]}
        )
        for q, p in zip(queries, parts, strict=True)
    ]
    return AssemblyPlan(chosen, search_mode, "fused", tuple(fused))


def _memo(fits: Callable[[str], bool]) -> Callable[[str], bool]:
    """``fits`` asked once per text (through the engine process it is a call)."""
    known: dict[str, bool] = {}

    def once(text: str) -> bool:
        if text not in known:
            known[text] = bool(fits(text))
        return known[text]

    return once


def _single_text(query: str, parts: list[str], variant: str) -> str:
    if not parts or variant == "query":
        return query
    if variant == "expansion_only":
        return "\n\n".join(parts)
    return concat(query, parts)


def _parts(retriever: RetrieverName, variant: str, query: str, parts: list[str], query_weight: float,
           fits: Callable[[str], bool]) -> tuple[Part, ...]:  # fmt: skip
    """The texts one retriever searches for one query, with their fusion weights."""
    if not parts:
        return (Part(query),)
    if variant == "balanced" and retriever == "bm25":
        return (Part(balanced_text(query, parts, query_weight)),)
    if variant == "fit":
        if retriever == "bm25":
            return (Part(balanced_text(query, parts, FIT_QUERY_WEIGHT)),)
        whole = concat(query, parts)
        if fits(whole):
            return (Part(whole),)
        return Part("\n\n".join(parts), 1.0 - FIT_QUERY_WEIGHT), Part(query, FIT_QUERY_WEIGHT)
    texts = [query, *parts]
    return tuple(Part(t, w) for t, w in zip(texts, part_weights(len(parts), query_weight), strict=True))
