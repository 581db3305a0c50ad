"""Group-disjoint splits (no group in two folds) and TheoremQA question -> theorem pairs.

The TheoremQA pairs exclude every problem whose id is a BRIGHT theoremqa query id (both BRIGHT theoremqa
domains), so a model trained on them can still be evaluated on the BRIGHT-derived offline sets.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from diver.datasets.bright import VendoredSource
from diver.datasets.model import find_data_root
from diver.datasets.theoremqa import ID_PREFIX, _load_json, theorem_id
from diver.errors import InputError
from diver.train.pairs import TrainingPair

BRIGHT_THEOREMQA_DOMAINS = ("theoremqa_questions", "theoremqa_theorems")
FOLDS = ("train", "dev", "test")


def bright_theoremqa_ids(data_root: Path | None = None) -> set[str]:
    """Every BRIGHT theoremqa query id (``TheoremQA_<id>``) of both domains."""
    source = VendoredSource(find_data_root(data_root))
    return {str(row["id"]) for domain in BRIGHT_THEOREMQA_DOMAINS for row in source.rows("examples", domain)}


def theoremqa_pairs(data_root: Path | None = None) -> tuple[list[TrainingPair], dict[str, str]]:
    """(question -> theorem pairs without BRIGHT query ids, theorem corpus ``{theorem id: text}``).

    Positives are ``theorem/<name>`` ids of ``all_theorems.json`` documents (``<name>\\n<text>``), the same
    ids and texts as ``theoremqa-theorems-offline``."""
    root = find_data_root(data_root)
    theorems: dict[str, str] = _load_json(root / "theoremqa" / "all_theorems.json")
    problems = _load_json(root / "theoremqa" / "theoremqa_test.json")
    by_lower = {name.lower(): name for name in theorems}
    excluded = bright_theoremqa_ids(root)
    pairs = []
    for problem in problems:
        pid = ID_PREFIX + str(problem["id"])
        name = by_lower.get(str(problem.get("theorem", "")).strip().lower())
        if pid in excluded or name is None or not str(problem.get("Question", "")).strip():
            continue
        pairs.append(
            TrainingPair(query=str(problem["Question"]), positive_id=theorem_id(name), id=pid, theorem=name)
        )
    corpus = {theorem_id(name): f"{name}\n{text}" for name, text in theorems.items()}
    return pairs, corpus


def split_by_group(
    pairs: Sequence[TrainingPair],
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    group: Callable[[TrainingPair], str] | None = None,
) -> dict[str, list[TrainingPair]]:
    """train/dev/test folds whose groups (default: the pair's theorem, else its positive) never overlap.

    Groups are shuffled with ``seed`` and filled into the folds in order until each fold holds about its
    fraction of the pairs; the test fold takes what is left."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    key = group or (lambda p: p.theorem or p.positive_id or p.positive_text or "")
    groups: dict[str, list[TrainingPair]] = defaultdict(list)
    for pair in pairs:
        groups[key(pair)].append(pair)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    folds: dict[str, list[TrainingPair]] = {fold: [] for fold in FOLDS}
    targets = [fractions[0] * len(pairs), (fractions[0] + fractions[1]) * len(pairs)]
    taken = 0
    for name in names:
        fold = "train" if taken < targets[0] else "dev" if taken < targets[1] else "test"
        folds[fold].extend(groups[name])
        taken += len(groups[name])
    return folds


def fold_groups(folds: dict[str, list[TrainingPair]]) -> dict[str, set[str]]:
    """The theorem (group) names of each fold."""
    return {fold: {p.theorem or p.positive_id or "" for p in items} for fold, items in folds.items()}
