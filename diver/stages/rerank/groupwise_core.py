"""Pure parts of GroupRank (DIVER v3, ``Reranker/rerank_groupwise.py``): group plans, reply parsing and
score aggregation. No LLM here; every function is deterministic given its seed.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from diver.fusion import min_max_normalise
from diver.llm.replies import strip_reasoning

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FENCED = re.compile(r"(?:```json\s*)([\s\S]+?)(?:\s*```)")
_OBJECT = re.compile(r"\{[\s\S]*?\}")
_DOUBLE_BRACKET = re.compile(r"(\[\d+\])\]")
_KEY = re.compile(r"^\s*\[?\s*(\d+)\s*\]?\s*$")


@dataclass(frozen=True)
class QueryPosition:
    """Where a query sits in a run: its index and every query's number of grouped candidates, in run order
    (the reference shuffles all queries from one global RNG, epoch by epoch)."""

    index: int
    lengths: tuple[int, ...]


def plan_groups(ids: Sequence[str], group_size: int, interval: int, repeat_num: int, seed: int,
                position: QueryPosition | None = None) -> list[list[str]]:  # fmt: skip
    """The reference's groups: each round shuffles the (already shuffled) list in place, then cuts
    ``docs[i:i + group_size]`` for ``i`` in ``range(0, len, interval)``.

    ``position`` None: ``random.Random(seed)`` for this query alone (the reference's shuffles for the first
    query of a one-query run). With ``position``: the reference's order (``rerank_by_group``: for each epoch,
    for each query in run order, ``random.shuffle(docs)`` from ``random.seed(seed)``); the other queries'
    shuffles are replayed on lists of their lengths (a shuffle draws the same numbers whatever the items)."""
    rng = random.Random(seed)
    docs = list(ids)
    groups: list[list[str]] = []
    for _ in range(repeat_num):
        if position is None:
            rng.shuffle(docs)
        else:
            for j, length in enumerate(position.lengths):
                rng.shuffle(docs if j == position.index else list(range(length)))
        groups.extend(docs[i : i + group_size] for i in range(0, len(docs), interval))
    return groups


@dataclass
class GroupParse:
    """Scores (0..10) by 1-based position in the group; only positions that exist, each once."""

    scores: dict[int, float] = field(default_factory=dict)
    repaired: bool = False  # the reference's typo repairs changed the JSON
    dropped: int = 0  # entries with an unknown position, a duplicate key or a score outside 0..10
    error: str = ""

    @property
    def failed(self) -> bool:
        return not self.scores


def _json_block(reply: str) -> str | None:
    """The reference's choice: inside the first <answer>, the last ```json block, else the last {...}."""
    text = strip_reasoning(reply)
    answer = _ANSWER.search(text)
    if answer:
        text = answer.group(1).strip()
    fenced = _FENCED.findall(text)
    if fenced:
        return str(fenced[-1]).strip()
    objects = _OBJECT.findall(text)
    if objects:
        return str(objects[-1])
    start = text.rfind("{")  # a reply cut before its closing brace: the reference's repair can still save it
    return text[start:] if start >= 0 else None


def repair_json(block: str) -> str:
    """The reference's repairs: ``"[7]]:"`` -> ``"[7]":``, a missing closing brace, runs of whitespace."""
    fixed = _DOUBLE_BRACKET.sub(r"\1", block.strip())
    if fixed.count("{") > fixed.count("}"):
        fixed += "}"
    return re.sub(r"\s+", " ", fixed).strip()


def _pairs_hook(pairs: list[tuple[str, object]]) -> list[tuple[str, object]]:
    return pairs


def _score(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and 0.0 <= float(value) <= 10.0:
        return float(value)
    return None


def parse_group_reply(reply: str, count: int) -> GroupParse:
    """Scores from a groupwise reply (``<reason>..</reason><answer>`` + ``{"[1]": 5, ...}``); never raises.

    Unlike the reference (where one bad entry fails the whole group, and ``"[0]"`` silently scores the last
    document through Python's negative index), a bad entry is dropped alone and counted."""
    block = _json_block(reply)
    if block is None:
        return GroupParse(error="no JSON object in the reply")
    fixed = repair_json(block)
    try:
        value = json.loads(fixed, object_pairs_hook=_pairs_hook)
    except ValueError as exc:
        return GroupParse(repaired=fixed != re.sub(r"\s+", " ", block).strip(), error=f"invalid JSON: {exc}")
    if not isinstance(value, list):
        return GroupParse(error="the JSON is not an object")
    parsed = GroupParse(repaired=fixed != re.sub(r"\s+", " ", block).strip())
    for key, raw in value:
        match = _KEY.match(key) if isinstance(key, str) else None
        position = int(match.group(1)) if match else 0
        score = _score(raw)
        if not 1 <= position <= count or position in parsed.scores or score is None:
            parsed.dropped += 1
            continue
        parsed.scores[position] = score
    if parsed.failed:
        parsed.error = "no valid [i]: score entry"
    return parsed


def mean_group_scores(
    groups: Sequence[Sequence[str]], parses: Sequence[GroupParse | None]
) -> tuple[dict[str, float], list[str]]:
    """A document's score = mean of its group scores / 10 (the reference's ``avg_scores``).

    A failed group (``None`` or failed parse) scores 0 for each of its documents, as the reference. An
    entry missing from a parsed reply contributes nothing (as the reference). Documents never scored are
    returned apart (the reference drops them from its output; we rank them with group score 0)."""
    collected: dict[str, list[float]] = {}
    for group, parse in zip(groups, parses, strict=True):
        if parse is None or parse.failed:
            for doc_id in group:
                collected.setdefault(doc_id, []).append(0.0)
            continue
        for position, score in parse.scores.items():
            collected.setdefault(group[position - 1], []).append(score / 10.0)
    means = {doc_id: sum(values) / len(values) for doc_id, values in collected.items()}
    ordered = list(dict.fromkeys(d for g in groups for d in g))
    return {d: means.get(d, 0.0) for d in ordered}, [d for d in ordered if d not in means]


def blend_group_scores(
    group: Mapping[str, float], retrieval: Mapping[str, float], blend: float, mode: str = "reference"
) -> dict[str, float]:
    """``blend * group + (1 - blend) * retrieval``: the reference's ``0.6 * new + 0.4 * all_scores`` with
    the retrieval score as the retriever gave it (``reference``), or min-max normalised (``renormalised``)."""
    scale = dict(retrieval) if mode == "reference" else min_max_normalise(dict(retrieval))
    return {d: blend * group.get(d, 0.0) + (1.0 - blend) * scale[d] for d in retrieval}


def group_order(prior: Sequence[str], group: Mapping[str, float], combined: Mapping[str, float]) -> list[str]:
    """Best combined score first; ties by group score (the reference sorts by it first), then prior rank."""
    position = {d: i for i, d in enumerate(prior)}
    return sorted(combined, key=lambda d: (-combined[d], -group.get(d, 0.0), position.get(d, len(position))))
