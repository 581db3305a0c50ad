"""Pure parts of reranking: tolerant parsers of LLM replies, ranking repair, windows and rank merging.

Parsers never raise on model output and only ever return candidate numbers that exist.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from diver.fusion import min_max_normalise
from diver.llm.replies import strip_reasoning

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_NUMBER = r"(\d+(?:\.\d+)?|(?:" + "|".join(_WORDS) + r")(?![a-z]))"
_OUT_OF = r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?"
_LABELLED = re.compile(
    r"relevance[\s_]*score[\s*_:=\-]*(?:is\s*)?[\s*_\[(]*" + _NUMBER + _OUT_OF, re.IGNORECASE
)
_SCORE = re.compile(r"\bscore[\s*_:=\-]*(?:is\s*)?[\s*_\[(]*" + _NUMBER + _OUT_OF, re.IGNORECASE)
_FRACTION = re.compile(r"(?<![\w.])" + r"(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*(10|100)\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*" + _NUMBER + r"\W*$", re.IGNORECASE)


def _value(token: str, denominator: str | None) -> float | None:
    word = _WORDS.get(token.lower())
    value = float(word) if word is not None else float(token)
    if denominator is not None:
        denom = float(denominator)
        if denom <= 0:
            return None
        value = value * 10.0 / denom
    return value if 0.0 <= value <= 10.0 else None


def parse_relevance_score(text: str) -> float | None:
    """The 0..10 score in a pointwise reply ("Relevance score: 8", "8/10", "ten"), or None if absent."""
    answer = strip_reasoning(text)
    for pattern in (_LABELLED, _SCORE):
        matches = list(pattern.finditer(answer))
        if matches:
            return _value(matches[-1].group(1), matches[-1].group(2))
    fractions = list(_FRACTION.finditer(answer))
    if fractions:
        return _value(fractions[-1].group(1), fractions[-1].group(2))
    bare = _BARE.match(answer)
    return _value(bare.group(1), None) if bare else None


@dataclass
class RankingParse:
    """Candidate numbers (1-based, valid, unique) in the model's order, and how they were found."""

    order: list[int] = field(default_factory=list)
    method: str = "none"  # json | repaired | arrows | none
    dropped: int = 0  # ids out of range, duplicated or not numbers

    @property
    def failed(self) -> bool:
        return not self.order


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_ID = re.compile(r"^\s*\[?\s*(\d+)\s*\]?\s*$")
_ARROWS = re.compile(r"\[\d+\](?:\s*(?:>|,|>>)\s*\[\d+\])+")
_LIST_KEYS = ("ranking", "ranked", "ranks", "ids", "order", "result", "results", "documents")


def _candidate_id(item: object) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str):
        match = _ID.match(item)
        return int(match.group(1)) if match else None
    if isinstance(item, dict):
        for key in ("id", "doc", "document", "candidate"):
            if key in item:
                return _candidate_id(item[key])
    return None


def _items(value: object) -> list[object] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in _LIST_KEYS:
            items = value.get(key)
            if isinstance(items, list):
                return items
        lists = [v for v in value.values() if isinstance(v, list)]
        return lists[0] if lists else None
    return None


def _json_values(text: str) -> list[object]:
    """Every JSON array or object that decodes at some bracket of ``text``, in order of position."""
    decoder = json.JSONDecoder()
    found: list[object] = []
    position = 0
    while position < len(text):
        starts = [i for i in (text.find("[", position), text.find("{", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        found.append(value)
        position = end
    return found


def _clean(ids: Sequence[object], count: int, method: str) -> RankingParse:
    order: list[int] = []
    dropped = 0
    for item in ids:
        number = _candidate_id(item)
        if number is None or not 1 <= number <= count or number in order:
            dropped += 1
            continue
        order.append(number)
    return RankingParse(order=order, method=method if order else "none", dropped=dropped)


def _from_json(sources: Iterable[str], count: int) -> RankingParse | None:
    for source in sources:
        for value in reversed(_json_values(source)):
            items = _items(value)
            parsed = _clean(items, count, "json") if items else None
            if parsed is not None and not parsed.failed:
                return parsed
    return None


def _from_arrows(answer: str, count: int) -> RankingParse | None:
    arrows = list(_ARROWS.finditer(answer))
    return _clean(re.findall(r"\d+", arrows[-1].group()), count, "arrows") if arrows else None


def _from_repaired(fences: Iterable[str], count: int) -> RankingParse | None:
    for block in fences:  # malformed or truncated JSON: keep the numbers in order
        parsed = _clean(re.findall(r"\d+", block), count, "repaired")
        if not parsed.failed:
            return parsed
    return None


def parse_ranking(text: str, count: int) -> RankingParse:
    """Ranked candidate numbers from a listwise reply: a JSON block, ``[2] > [1]``, or repaired JSON."""
    answer = strip_reasoning(text)
    fences = [m.group(1) for m in _FENCE.finditer(answer)][::-1]
    attempts: list[Callable[[], RankingParse | None]] = [
        lambda: _from_json(fences, count),
        lambda: _from_arrows(answer, count),  # before bare JSON: each "[2]" of "[2] > [1]" is JSON too
        lambda: _from_json([answer], count),
        lambda: _from_repaired(fences, count),
    ]
    for attempt in attempts:
        parsed = attempt()
        if parsed is not None and not parsed.failed:
            return parsed
    return RankingParse()


def apply_ranking(prior: Sequence[str], order: Sequence[int]) -> list[str]:
    """Ranked candidates first (``order`` holds 1-based positions in ``prior``), the rest in prior order."""
    ranked = [prior[i - 1] for i in order]
    chosen = set(order)
    return ranked + [doc_id for i, doc_id in enumerate(prior, 1) if i not in chosen]


def window_spans(count: int, size: int, step: int) -> list[tuple[int, int]]:
    """RankGPT sliding windows ``[start, end)`` from the bottom of the list up; the top window is full."""
    if count <= size:
        return [(0, count)] if count else []
    spans: list[tuple[int, int]] = []
    end = count
    while end - size > 0:
        spans.append((end - size, end))
        end -= step
    spans.append((0, size))
    return spans


def rank_scores(order: Sequence[str]) -> dict[str, float]:
    """DIVER's ``reassign_score``: rank r counted from 0 scores ``-ln(r + 1)``, so the top document gets 0."""
    return {doc_id: -math.log(rank + 1) for rank, doc_id in enumerate(order)}


def merge_rankings(
    prior: Sequence[str], rankings: Sequence[tuple[Sequence[str], float]]
) -> tuple[list[str], dict[str, float]]:
    """Weighted sum of ``rank_scores`` of each (order, weight), as DIVER's ``rerank_merge_point_and_list``.

    A document missing from one order scores the next rank there (``-ln(len(order) + 1)``). Ties keep the
    first ranking's order (DIVER sorts the merged scores stably over the pointwise order), then ``prior``.
    """
    final = {doc_id: 0.0 for doc_id in prior}
    for order, weight in rankings:
        scores = rank_scores(order)
        worst = -math.log(len(order) + 1)
        for doc_id in final:
            final[doc_id] += weight * scores.get(doc_id, worst)
    position = {doc_id: i for i, doc_id in enumerate(prior)}
    first = {doc_id: i for i, doc_id in enumerate(rankings[0][0])} if rankings else {}
    ordered = sorted(final, key=lambda d: (-final[d], first.get(d, len(first)), position[d]))
    return ordered, final


PointwiseMode = Literal["reference", "renormalised"]


def combine_pointwise(
    llm_scores: Mapping[str, float | None],
    retrieval: Mapping[str, float],
    blend: float,
    mode: PointwiseMode = "reference",
) -> dict[str, float]:
    """Blend the 0..10 LLM scores with the retrieval scores of the same candidates.

    ``reference`` (DIVER's ``rerank_pointwise.py``): ``blend * LLM/10 + (1 - blend) * retrieval score``,
    the retrieval score as the retriever gave it (DIVER's min-max hybrid, in [0, 1]); a reply without a
    score (or a failed call) counts as LLM score 0.

    ``renormalised`` (our earlier variant): the retrieval scores are min-max normalised over the
    candidates, and a missing LLM score is imputed with the mean of the parsed ones (the retrieval score
    when none parsed). Useful when retrieval scores are not on a [0, 1] scale (RRF fusion, BM25 only).
    """
    if mode == "reference":
        return {
            doc_id: blend * ((llm_scores.get(doc_id) or 0.0) / 10.0) + (1.0 - blend) * score
            for doc_id, score in retrieval.items()
        }
    if mode != "renormalised":
        raise ValueError(f"unknown pointwise mode {mode!r}")
    norm = min_max_normalise(retrieval)
    parsed = [v / 10.0 for v in llm_scores.values() if v is not None]
    mean = sum(parsed) / len(parsed) if parsed else None
    combined: dict[str, float] = {}
    for doc_id, h in norm.items():
        llm = llm_scores.get(doc_id)
        estimate = llm / 10.0 if llm is not None else (mean if mean is not None else h)
        combined[doc_id] = blend * estimate + (1.0 - blend) * h
    return combined


def pointwise_order(
    candidates: Sequence[str], llm_scores: Mapping[str, float | None], combined: Mapping[str, float]
) -> list[str]:
    """Best combined score first. Ties as DIVER: its stable sort runs over the candidates already sorted
    by LLM score (missing = 0), which were in retrieval order; so higher LLM score, then retrieval rank."""
    position = {doc_id: i for i, doc_id in enumerate(candidates)}
    return sorted(
        combined, key=lambda d: (-combined[d], -(llm_scores.get(d) or 0.0), position.get(d, len(position)))
    )
