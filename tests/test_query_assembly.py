"""Query assembly: every variant over the real engine (hashing embedder), and the pure helpers."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from diver.errors import InputError
from diver.hits import SearchResult
from diver.index.collection import Collection
from diver.stages.assembly_plan import VARIANTS, balanced_text, clean, concat, part_weights
from diver.stages.assembly_search import AssemblingRetriever, AssemblyTarget, search_assembled, weighted_fuse
from diver.stages.retriever import search_with_expansions
from diver.text.documents import make_document

DATA = Path(__file__).parent / "data"
THEOREMS = json.loads((Path(__file__).parents[1] / "data/theoremqa/all_theorems.json").read_text("utf-8"))
NAMES = ["Pigeonhole Principle", "Kraft inequality", "Fermat's little theorem", "Bayes' theorem",
         "Euler's formula", "Intermediate value theorem"]  # fmt: skip
QUERY = "Mary bakes 10 cookies in three shapes; what is the smallest count of the most common shape?"
EXPANSION = "Pigeonhole principle: n items in m boxes, some box holds at least ceil(n/m) items."
needs_filters = pytest.mark.skipif(
    "where" not in inspect.signature(Collection.search_many).parameters, reason="core filters not landed yet"
)


def assembled_search_many(col, queries, expansions, **kwargs) -> list[SearchResult]:
    return search_assembled(AssemblyTarget.for_collection(col), queries, expansions, **kwargs)


def assembled_search(col, query, expansions, **kwargs) -> SearchResult:
    return assembled_search_many(col, [query], [expansions], **kwargs)[0]


@pytest.fixture
def col(engine):
    c = engine.collection("theorems", create=True)
    c.upsert([make_document(n, f"{n}\n{THEOREMS[n]}", {"theorem": n}) for n in NAMES])
    return c


def test_helpers() -> None:
    assert clean([" a ", "", "a", "b"]) == ["a", "b"]
    assert concat("q", ["x", " "]) == "q\n\nx"
    assert part_weights(0, 0.5) == [1.0] and part_weights(2, 0.5) == [0.5, 0.25, 0.25]
    long = " ".join(["theorem"] * 40)
    text = balanced_text("pigeons boxes", [long])
    assert text.count("pigeons boxes") > 5 and text.endswith(long)  # a short query is repeated to weigh
    assert balanced_text(long, ["pigeons boxes"], 0.25).count("pigeons boxes") > 5  # or the expansions
    assert balanced_text("q", []) == "q"
    fused = weighted_fuse([{"a": 2.0, "b": 1.0}, {"b": 5.0, "c": 1.0}], [0.5, 0.5])
    assert fused == {"a": 0.5, "b": 0.5, "c": 0.0}
    with pytest.raises(InputError, match="expansions must be strings"):
        clean([3])  # type: ignore[list-item]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_every_variant_ranks_with_expansions(col, variant: str, mode: str) -> None:
    result = assembled_search(col, QUERY, [EXPANSION], k=3, mode=mode, variant=variant)
    assert result.query == QUERY and (len(result.hits) == 3 or (mode == "bm25" and result.hits))
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    if variant != "query" and mode != "dense":  # the hashing embedder carries no meaning
        assert "Pigeonhole Principle" in [h.id for h in result.hits[:2]]


def test_without_expansions_every_variant_is_plain_search(col) -> None:
    plain = col.search(QUERY, k=4)
    for variant in VARIANTS:
        got = assembled_search(col, QUERY, [], k=4, variant=variant)
        assert [h.id for h in got.hits] == [h.id for h in plain.hits]


@needs_filters
def test_exclude_and_filters_reach_every_part(col) -> None:
    out = assembled_search_many(col, [QUERY], [[EXPANSION]], k=5, variant="separate",
                                exclude=[{"Pigeonhole Principle"}])  # fmt: skip
    assert "Pigeonhole Principle" not in [h.id for h in out[0].hits]
    only = assembled_search(col, QUERY, [EXPANSION], k=5, variant="balanced",
                            where={"theorem": {"$in": ["Bayes' theorem", "Kraft inequality"]}})  # fmt: skip
    assert {h.id for h in only.hits} == {"Bayes' theorem", "Kraft inequality"}


def test_bad_arguments(col) -> None:
    with pytest.raises(InputError, match="query assembly must be one of"):
        assembled_search(col, QUERY, [EXPANSION], variant="nope")
    with pytest.raises(InputError, match="one expansion list per query"):
        assembled_search_many(col, [QUERY], [], k=3)


@needs_filters
def test_retrievers_use_assembly(col) -> None:
    retriever = AssemblingRetriever(col, where={"theorem": {"$ne": "Bayes' theorem"}})
    hits = search_with_expansions(retriever, QUERY, [EXPANSION], 6)
    assert hits[0].id == "Pigeonhole Principle" and "Bayes' theorem" not in [h.id for h in hits]
    assert retriever.get_text("Kraft inequality").startswith("Kraft inequality")

    class Plain:  # a retriever that knows nothing of assembly gets QExpand's text
        seen: list[str] = []

        def search(self, query: str, k: int) -> list:
            self.seen.append(query)
            return []

    plain = Plain()
    search_with_expansions(plain, "q", ["e"], 3)
    assert plain.seen == ["q\n\ne"]


@pytest.mark.parametrize("name", ["agent_expansions_theorems.jsonl", "agent_expansions_questions.jsonl"])
def test_hand_written_expansion_files(name: str) -> None:
    rows = [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) >= 10 and all(r["id"].startswith("TheoremQA_") and r["expansions"][0] for r in rows)


def test_fit_keeps_the_expansion_when_the_whole_is_too_long_for_the_embedder(col) -> None:
    dense = assembled_search(col, QUERY, [EXPANSION], k=3, variant="fit", mode="dense")
    assert not any(n.startswith("query assembly") for n in dense.notes)  # fits: QExpand's single text
    long_query = QUERY + " " + " ".join(f"cookie{i}" for i in range(400))  # past the 256-token window
    cut = assembled_search(col, long_query, [EXPANSION], k=3, variant="fit", mode="hybrid")
    assert "query assembly: fit (2 parts)" in cut.notes
    assert "Pigeonhole Principle" in [h.id for h in cut.hits]


@pytest.mark.parametrize("variant", VARIANTS)
def test_long_llm_expansions_never_fail_the_search(col, variant: str) -> None:
    """An expander that ignores max_tokens (llama.cpp without max_tokens in the body) wrote ~24k characters:
    every variant still searches, cut to limits.max_query_chars and said so, the query kept first."""
    limit = col.engine.settings.limits.max_query_chars
    rambling = [EXPANSION + " " + " ".join(f"word{j}x{i}" for i in range(limit // 14)) for j in range(2)]
    assert sum(map(len, rambling)) > limit
    for mode in ("bm25", "dense", "hybrid"):
        result = assembled_search(col, QUERY, rambling, k=3, variant=variant, mode=mode)
        assert result.hits and result.query == QUERY
        if variant in ("concat", "expansion_only"):  # one text over the limit: cut, and said so
            assert any("cut to" in n and "max_query_chars" in n for n in result.notes), result.notes


def test_an_over_long_query_is_refused_not_cut(col) -> None:
    limit = col.engine.settings.limits.max_query_chars
    for expansions in ([], [EXPANSION]):
        with pytest.raises(InputError, match=f"the limit is {limit}"):
            assembled_search(col, "x" * (limit + 1), expansions, k=3)


def test_assembly_variant_is_a_setting(monkeypatch):
    from typing import get_args

    from diver.config import load_settings
    from diver.config.search import Assembly
    from diver.stages.assembly_plan import DEFAULT_VARIANT, VARIANTS

    assert VARIANTS == get_args(Assembly) and load_settings().search.assembly == DEFAULT_VARIANT == "fit"
    monkeypatch.setenv("DIVER_SEARCH__ASSEMBLY", "balanced")
    assert load_settings().search.assembly == "balanced"
    monkeypatch.setenv("DIVER_SEARCH__ASSEMBLY", "nope")
    from diver.errors import ConfigError

    with pytest.raises(ConfigError, match="search.assembly"):
        load_settings()
