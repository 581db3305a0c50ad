"""GroupRank's shuffle order across the queries of a run, as ``Reranker/rerank_groupwise.py``: one
``random.seed(666)`` at import, then ``rerank_by_group`` runs ``prepare_groups_one_epoch`` per epoch over
all queries in order, each ``random.shuffle(docs)`` shuffling that query's (already shuffled) list in place.

The expected groups below were computed by running the reference's own ``GroupReranker`` methods
(``prepare_groups_one_epoch`` x epochs, vllm stubbed out) on lists ``q{j}d{i}``; they are written as the
indices ``i`` of each group."""

from __future__ import annotations

import pytest

from diver.stages.rerank.groupwise_core import QueryPosition, plan_groups

# lengths 6,6,6; group_size 3, interval 3, 2 epochs
REFERENCE_666 = {
    0: [[2, 0, 1], [4, 5, 3], [4, 0, 5], [1, 3, 2]],
    1: [[1, 3, 0], [2, 5, 4], [1, 0, 2], [5, 3, 4]],
    2: [[5, 0, 2], [4, 3, 1], [3, 4, 0], [5, 1, 2]],
}
# lengths 5,7,4 (queries with different candidate counts); group_size 4, interval 4, 2 epochs
REFERENCE_574 = {
    0: [[0, 2, 1, 4], [3], [4, 1, 0, 2], [3]],
    1: [[1, 3, 5, 2], [6, 0, 4], [6, 2, 0, 3], [4, 1, 5]],
    2: [[0, 2, 3, 1], [0, 3, 2, 1]],
}


def ids(j: int, n: int) -> list[str]:
    return [f"q{j}d{i}" for i in range(n)]


def as_indices(groups: list[list[str]]) -> list[list[int]]:
    return [[int(d.split("d")[1]) for d in g] for g in groups]


@pytest.mark.parametrize(
    ("lengths", "size", "expected"), [((6, 6, 6), 3, REFERENCE_666), ((5, 7, 4), 4, REFERENCE_574)]
)
def test_every_query_of_a_run_gets_the_reference_groups(lengths: tuple[int, ...], size: int,
                                                        expected: dict[int, list[list[int]]]) -> None:  # fmt: skip
    for j, n in enumerate(lengths):
        groups = plan_groups(ids(j, n), size, size, 2, 666, QueryPosition(j, lengths))
        assert as_indices(groups) == expected[j], j


def test_per_query_shuffles_match_only_the_first_shuffle_of_the_first_query() -> None:
    """The default ('per_query': each query its own Random(666)) is a variant: only query 0's first
    epoch equals the reference's run order."""
    first = as_indices(plan_groups(ids(0, 6), 3, 3, 2, 666))
    assert first[:2] == REFERENCE_666[0][:2] and first[2:] != REFERENCE_666[0][2:]
    assert as_indices(plan_groups(ids(1, 6), 3, 3, 2, 666)) != REFERENCE_666[1]


def test_the_graph_passes_the_query_position_to_grouprank(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With shuffle='reference' a query's groups are the run-order groups of its position (diver eval sets
    query_index/query_count); without a position, or with 'per_query', its own Random(seed)."""
    import asyncio
    import json
    import re

    from llm_fakes import FakeRetriever, ScriptedChatModel

    from diver.config import load_settings
    from diver.graph.context import Context
    from diver.graph.run import arun_deep_search

    docs = {f"d{i:02d}": f"pigeons boxes share note {i} " + "filler " * i for i in range(30)}
    prompts: list[str] = []

    def reply(prompt: str) -> str:
        prompts.append(prompt)
        count = len(re.findall(r"\[\d+\]\. <document>", prompt))
        return "<answer>```json\n" + json.dumps({f"[{i}]": 5 for i in range(1, count + 1)}) + "\n```</answer>"

    def groups_sent(shuffle: str, **position: int) -> list[list[str]]:
        prompts.clear()
        settings = load_settings(data_dir=tmp_path, llm={"cache": False, "reranker": {"model": "fake"}},
                                 rerank={"rerank_k": 20, "groupwise": {"shuffle": shuffle}})  # fmt: skip
        asyncio.run(arun_deep_search(FakeRetriever(docs), "pigeons boxes share", settings,
                                     context=Context(expand=False, rerankers=["groupwise"], **position),
                                     chat_factory=lambda _s: ScriptedChatModel(reply=reply, prompts=[])))  # fmt: skip
        return sorted(re.findall(r"<document>\npigeons boxes share note (\d+) ", p) for p in prompts)

    ranked = [h.id for h in FakeRetriever(docs).search("pigeons boxes share", 20)]
    as_numbers = lambda groups: sorted([str(int(d[1:])) for d in g] for g in groups)  # noqa: E731
    at_3_of_5 = plan_groups(ranked, 10, 10, 2, 666, QueryPosition(3, (20,) * 5))
    assert groups_sent("reference", query_index=3, query_count=5) == as_numbers(at_3_of_5)
    own = plan_groups(ranked, 10, 10, 2, 666)
    assert groups_sent("per_query", query_index=3, query_count=5) == as_numbers(own)
    assert groups_sent("reference") == as_numbers(own)  # no position: the query alone
    assert as_numbers(at_3_of_5) != as_numbers(own)
