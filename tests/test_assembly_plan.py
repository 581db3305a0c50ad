"""Query-assembly planning, pure: hand-computed plans with no collection and no embedder."""

from __future__ import annotations

import dataclasses

import pytest

from diver.errors import InputError
from diver.stages.assembly_plan import (
    FIT_QUERY_WEIGHT,
    MAX_REPEAT,
    Part,
    balanced_text,
    concat,
    part_weights,
    plan_assembly,
)

E8 = "one two three four five six seven eight"  # 8 approximate tokens
Q4 = "alpha beta gamma delta"  # 4


def never(text: str) -> bool:
    raise AssertionError(f"fits() asked for {text!r}")


def test_concat_is_qexpands_text() -> None:
    assert concat("q", [" e1 ", "", "e2", "e1"]) == "q\n\ne1\n\ne2"
    assert concat("q", []) == "q"


def test_balanced_text_repetitions() -> None:
    # query 1 token, expansions 8: weight 0.5 wants 8 query tokens per 8 -> the query 8 times
    assert balanced_text("cat", [E8], 0.5) == "\n\n".join(["cat"] * 8 + [E8])
    # weight 0.25 wants 1 query token per 3 expansion tokens: round(8 / 3) = 3 copies
    assert balanced_text("cat", [E8], FIT_QUERY_WEIGHT) == "\n\n".join(["cat"] * 3 + [E8])
    # a 4-token query and a 1-token expansion at 0.25: the expansion is repeated round(4 * 3) = 12 times
    assert balanced_text(Q4, ["x"], 0.25) == "\n\n".join([Q4] + ["x"] * 12)
    # equal lengths at 0.5: nothing repeated; at most MAX_REPEAT copies however short the query
    assert balanced_text("cat dog", ["q w"], 0.5) == "cat dog\n\nq w"
    assert balanced_text("x", [" ".join(["w"] * 100)], 0.5).count("x\n\n") == MAX_REPEAT


def test_part_weights() -> None:
    assert part_weights(0, 0.3) == [1.0]
    assert part_weights(1, 0.3) == [0.3, 0.7]
    assert part_weights(4, 0.2) == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2])


@pytest.mark.parametrize(
    ("variant", "text"),
    [("concat", "q\n\ne1\n\ne2"), ("query", "q"), ("expansion_only", "e1\n\ne2")],
)
def test_single_text_variants(variant: str, text: str) -> None:
    plan = plan_assembly(["q"], [[" e1 ", "e2", "e1", ""]], variant, "hybrid", never)
    assert (plan.kind, plan.variant, plan.mode, plan.retrievers) == (
        "single",
        variant,
        "hybrid",
        ("bm25", "dense"),
    )
    assert plan.single_texts() == [text]
    assert plan.queries[0].searches == {"bm25": (Part(text, 1.0),), "dense": (Part(text, 1.0),)}
    assert plan.queries[0].expansions == ("e1", "e2") and plan.queries[0].n_parts == 3


def test_fit_dense_is_concat_when_everything_fits() -> None:
    asked: list[str] = []

    def fits(text: str) -> bool:
        asked.append(text)
        return True

    plan = plan_assembly(["q1", "q2"], [["e"], []], "fit", "dense", fits)
    assert (plan.kind, plan.variant) == ("single", "concat")
    assert plan.single_texts() == ["q1\n\ne", "q2"]
    assert asked == ["q1\n\ne", "q2"]


def test_fit_dense_splits_what_does_not_fit() -> None:
    plan = plan_assembly(
        ["short", "long"], [["e"], ["f1", "f2"]], "fit", "dense", lambda t: t.startswith("short")
    )
    assert (plan.kind, plan.variant, plan.retrievers) == ("fused", "fit", ("dense",))
    short, long = plan.queries
    assert short.searches == {"dense": (Part("short\n\ne", 1.0),)}
    assert long.searches == {"dense": (Part("f1\n\nf2", 0.75), Part("long", 0.25))}
    assert long.n_parts == 3


@pytest.mark.parametrize("fits", [True, False])
def test_fit_hybrid(fits: bool) -> None:
    plan = plan_assembly(["cat"], [[E8]], "fit", "hybrid", lambda text: fits)
    assert (plan.kind, plan.variant) == ("fused", "fit")  # BM25 never gets QExpand's text under fit
    searches = plan.queries[0].searches
    assert searches["bm25"] == (Part("\n\n".join(["cat"] * 3 + [E8]), 1.0),)
    if fits:
        assert searches["dense"] == (Part(f"cat\n\n{E8}", 1.0),)
    else:
        assert searches["dense"] == (Part(E8, 1 - FIT_QUERY_WEIGHT), Part("cat", FIT_QUERY_WEIGHT))


def test_fit_bm25_only_never_asks_the_window() -> None:
    plan = plan_assembly(["cat"], [[E8]], "fit", "bm25", never)
    assert plan.retrievers == ("bm25",)
    assert plan.queries[0].searches == {"bm25": (Part("\n\n".join(["cat"] * 3 + [E8]), 1.0),)}


def test_separate_weights_for_n_expansions() -> None:
    plan = plan_assembly(["q"], [["a", "b", "c"]], "separate", "hybrid", never, query_weight=0.4)
    assert plan.kind == "fused"
    for retriever in ("bm25", "dense"):
        parts = plan.queries[0].searches[retriever]
        assert [p.text for p in parts] == ["q", "a", "b", "c"]
        assert [p.weight for p in parts] == pytest.approx([0.4, 0.2, 0.2, 0.2])


def test_balanced_repeats_for_bm25_and_separates_for_dense() -> None:
    plan = plan_assembly(["cat"], [[E8]], "balanced", "hybrid", never)
    searches = plan.queries[0].searches
    assert searches["bm25"] == (Part("\n\n".join(["cat"] * 8 + [E8]), 1.0),)
    assert searches["dense"] == (Part("cat", 0.5), Part(E8, 0.5))
    dense_only = plan_assembly(["cat"], [[E8]], "balanced", "dense", never)
    assert dense_only.retrievers == ("dense",) and dense_only.queries[0].searches == {
        "dense": searches["dense"]
    }


@pytest.mark.parametrize("variant", ["query", "concat", "expansion_only", "separate", "balanced", "fit"])
def test_without_expansions_the_queries_are_searched_as_they_are(variant: str) -> None:
    plan = plan_assembly(["q1", "q2"], [[], ["  "]], variant, "dense", never)
    assert (plan.kind, plan.variant) == ("single", "query")
    assert plan.single_texts() == ["q1", "q2"]


def test_a_query_without_expansions_in_a_fused_batch() -> None:
    plan = plan_assembly(["q1", "q2"], [["e"], []], "separate", "bm25", never)
    assert plan.kind == "fused"
    assert plan.queries[1].searches == {"bm25": (Part("q2", 1.0),)} and plan.queries[1].n_parts == 1
    with pytest.raises(ValueError, match="no single text"):
        plan.single_texts()


def test_plans_are_frozen() -> None:
    plan = plan_assembly(["q"], [["e"]], "concat", "bm25")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.variant = "query"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.queries[0].searches["bm25"][0].text = "x"  # type: ignore[misc]


def test_bad_requests() -> None:
    with pytest.raises(InputError, match="query assembly must be one of"):
        plan_assembly(["q"], [["e"]], "nope")
    with pytest.raises(InputError, match="query_weight"):
        plan_assembly(["q"], [["e"]], "separate", query_weight=1.0)
    with pytest.raises(InputError, match="one expansion list per query"):
        plan_assembly(["q"], [], "separate")
    with pytest.raises(InputError, match="mode must be one of"):
        plan_assembly(["q"], [["e"]], "separate", "sparse")
    with pytest.raises(InputError, match="the limit is 5"):
        plan_assembly(["longer"], [["e"]], "concat", max_query_chars=5)
    assert plan_assembly(["q" * 5], [["e" * 50]], "concat", max_query_chars=5).single_texts() == [
        "q" * 5 + "\n\n" + "e" * 50
    ]
