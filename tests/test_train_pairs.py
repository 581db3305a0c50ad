"""Training pairs (validation, round trip, hash) and group-disjoint splits (TheoremQA: disjoint by theorem,
no BRIGHT theoremqa query id anywhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diver.errors import InputError
from diver.train.pairs import TrainingPair, load_pairs, pairs_hash, parse_pair, write_pairs
from diver.train.splits import bright_theoremqa_ids, fold_groups, split_by_group, theoremqa_pairs


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"positive_id": "d1"}, "'query'"),
        ({"query": "q", "positive_id": "d1", "positive_text": "t"}, "exactly one"),
        ({"query": "q"}, "exactly one"),
        ({"query": "q", "positive_id": "d1", "negative_ids": ["d1"]}, "also listed"),
        ({"query": "q", "positive_id": "d1", "negative_ids": "d2"}, "negative_ids"),
        ({"query": "q", "positive_id": "d1", "answer": "x"}, "unknown field"),
        (["q", "d1"], "JSON object"),
    ],
)
def test_invalid_pairs_are_refused(row: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_pair(row)


def test_pairs_round_trip_and_hash(tmp_path: Path) -> None:
    pairs = [
        TrainingPair(query="why does ice float?", positive_id="d1", negative_ids=["d2", "d3"]),
        TrainingPair(query="a question", positive_text="inline passage"),
    ]
    path = tmp_path / "pairs.jsonl"
    assert write_pairs(path, pairs) == 2
    assert load_pairs(path) == pairs
    assert pairs_hash(load_pairs(path)) == pairs_hash(pairs)
    assert pairs_hash(pairs[:1]) != pairs_hash(pairs)


def test_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "q", "positive_id": "d1"}\n\n{not json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"pairs.jsonl:3"):
        load_pairs(path)
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="no training pairs"):
        load_pairs(path)


def test_split_is_disjoint_by_group_and_complete() -> None:
    pairs = [TrainingPair(query=f"q{i}", positive_id=f"t{i % 17}", theorem=f"T{i % 17}") for i in range(100)]
    for seed in range(5):
        folds = split_by_group(pairs, (0.6, 0.2, 0.2), seed=seed)
        groups = fold_groups(folds)
        assert not groups["train"] & groups["dev"] and not groups["train"] & groups["test"]
        assert not groups["dev"] & groups["test"]
        assert sorted(p.query for f in folds.values() for p in f) == sorted(p.query for p in pairs)
        assert all(folds[f] for f in ("train", "dev", "test"))
    with pytest.raises(InputError):
        split_by_group(pairs, (0.5, 0.2, 0.2))


def test_theoremqa_split_is_theorem_disjoint_without_bright_ids() -> None:
    pairs, corpus = theoremqa_pairs()
    bright = bright_theoremqa_ids()
    assert len(bright) >= 194 and len(corpus) == 354
    assert pairs and not {p.id for p in pairs} & bright
    assert all(p.positive_id in corpus for p in pairs)
    folds = split_by_group(pairs, seed=0)
    theorems = {fold: {p.positive_id for p in items} for fold, items in folds.items()}
    assert not theorems["train"] & theorems["test"]
    assert not theorems["train"] & theorems["dev"]
    assert not theorems["dev"] & theorems["test"]
    assert len(folds["test"]) >= 0.15 * len(pairs)
