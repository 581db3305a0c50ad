"""Result budgets: ``hit_chars`` per hit, ``max_chars`` per response, and the compact numbered candidate
form an agent can rerank itself. Every cut is reported in words, so the agent knows what it did not see."""

from __future__ import annotations

import json
from collections.abc import Sequence

from diver.hits import SearchHit
from diver.server.models import Candidate
from diver.text.tokens import truncate_tokens

MIN_HIT_CHARS = 80


def _size(obj: object) -> int:
    return len(json.dumps(obj, ensure_ascii=False, default=str))


def fit_hits(hits: Sequence[SearchHit], hit_chars: int, max_chars: int) -> tuple[list[SearchHit], list[str]]:
    """Cut each highlight to ``hit_chars``, then keep hits (best first) while the JSON fits ``max_chars``.

    The first hit is always kept (its highlight cut further if it alone exceeds the budget)."""
    cut: list[str] = []
    shortened = 0
    kept: list[SearchHit] = []
    used = 0
    for hit in hits:
        if len(hit.highlight) > hit_chars:
            hit = hit.model_copy(update={"highlight": hit.highlight[:hit_chars]})
            shortened += 1
        size = _size(hit.model_dump())
        if kept and used + size > max_chars:
            break
        if not kept and size > max_chars:
            room = max(MIN_HIT_CHARS, len(hit.highlight) - (size - max_chars))
            hit = hit.model_copy(update={"highlight": hit.highlight[:room]})
            cut.append(f"hit 1: highlight cut to {room} characters to fit max_chars={max_chars}")
            size = _size(hit.model_dump())
        kept.append(hit)
        used += size
    if shortened:
        cut.append(f"{shortened} highlight(s) cut to hit_chars={hit_chars}")
    if len(kept) < len(hits):
        cut.append(
            f"hits {len(kept) + 1}-{len(hits)} dropped to fit max_chars={max_chars}: raise max_chars, lower "
            "hit_chars, or use format='compact'"
        )
    return kept, cut


def compact(hits: Sequence[SearchHit], tokens: int, max_chars: int,
            hit_chars: int) -> tuple[list[Candidate], list[str]]:  # fmt: skip
    """Numbered candidates (n, id, title, first ``tokens`` tokens of the best passage, at most ``hit_chars``
    characters) within ``max_chars``."""
    out: list[Candidate] = []
    used = 0
    for n, hit in enumerate(hits, start=1):
        body = hit.highlight
        if hit.title and body.startswith(hit.title):
            body = body[len(hit.title) :].lstrip()
        candidate = Candidate(n=n, id=hit.id, title=hit.title, text=truncate_tokens(body, tokens)[:hit_chars],
                              source=getattr(hit, "source", None))  # fmt: skip
        size = _size(candidate.model_dump())
        if out and used + size > max_chars:
            return out, [
                f"candidates {n}-{len(hits)} dropped to fit max_chars={max_chars}: raise max_chars or lower tokens"
            ]
        out.append(candidate)
        used += size
    return out, []


def fit_text(text: str, max_chars: int, what: str) -> tuple[str, list[str]]:
    if len(text) <= max_chars:
        return text, []
    return text[:max_chars], [f"{what} cut from {len(text)} to {max_chars} characters"]
