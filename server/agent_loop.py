"""The DIVER loop driven by the calling agent: the opaque ``round`` token, the feedback passages and the
stop rule (top-10 stable). Pure functions; the tools in ``deep_tools.py`` call them.

Round 0 is plain retrieval (the agent has written nothing yet); round r >= 1 retrieves with the agent's
round-r expansions. The token carries the round just finished, its top-10 and every document already
shown as feedback, bound to the collection and query it was made for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from diver.errors import InputError
from diver.hits import SearchHit
from diver.text.tokens import truncate_tokens

TOP_N = 10
TOKEN_VERSION = 1
MAX_SEEN = 200


@dataclass
class RoundState:
    """What one round of the agent's loop left behind."""

    round: int = 0
    top: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    binding: str = ""


def binding(collection: str, query: str) -> str:
    """A short hash tying a token to its collection and original query."""
    return hashlib.sha256(f"{collection}\x00{query.strip()}".encode()).hexdigest()[:12]


def encode_round(state: RoundState) -> str:
    payload = {"v": TOKEN_VERSION, "r": state.round, "t": state.top[:TOP_N], "s": state.seen[-MAX_SEEN:],
               "b": state.binding}  # fmt: skip
    raw = zlib.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_round(token: str | None, collection: str, query: str) -> RoundState:
    """The state of the previous round; a fresh round-0 state when ``token`` is empty."""
    expected = binding(collection, query)
    if not token:
        return RoundState(binding=expected)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(zlib.decompress(raw))
        if payload.get("v") != TOKEN_VERSION:
            raise ValueError("unknown version")
        state = RoundState(int(payload["r"]), [str(i) for i in payload["t"]], [str(i) for i in payload["s"]],
                           str(payload["b"]))  # fmt: skip
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise InputError("round: not a token returned by deep_search; omit it to start a new loop") from exc
    if state.binding != expected:
        raise InputError(
            "round: this token belongs to another collection or query; pass the same collection and the "
            "same original query (put new wording in `expansions`), or omit `round` to start over"
        )
    return state


def top_overlap(previous: Sequence[str], current: Sequence[str], n: int = TOP_N) -> float:
    a, b = set(previous[:n]), set(current[:n])
    return len(a & b) / max(len(a), len(b), 1)


def select_feedback(hits: Sequence[SearchHit], seen: Sequence[str], k: int) -> list[SearchHit]:
    """The first ``k`` hits not shown before."""
    already = set(seen)
    return [h for h in hits if h.id not in already][:k]


def feedback_text(hit: SearchHit, max_tokens: int) -> str:
    """The hit's best passage (its title when the passage does not start with it), cut to ``max_tokens``."""
    body = hit.highlight or ""
    text = body if not hit.title or body.startswith(hit.title) else f"{hit.title}\n{body}"
    return truncate_tokens(text, max_tokens)


@dataclass
class Verdict:
    """Whether the loop should go on, and the instruction for the agent's next step."""

    converged: bool
    overlap: float | None
    next_step: str


def verdict(prev: RoundState, round_no: int, top: list[str], has_expansions: bool, stop_overlap: float,
            max_rounds: int, feedback_left: int) -> Verdict:  # fmt: skip
    """Our stop rule (the reference runs every round): the top-10 after a refinement overlaps the previous
    round's by ``stop_overlap`` (``inf`` when expansion.early_stop is off)."""
    overlap = top_overlap(prev.top, top) if round_no >= 1 and prev.top else None
    if not has_expansions:
        return Verdict(False, None, "Round 1: read `feedback`, write a passage that answers the query and "
                       "names the theorems/concepts/APIs a relevant document would contain, then call "
                       "deep_search again with expansions=[your passage] and this `round` token.")  # fmt: skip
    if overlap is not None and overlap >= stop_overlap:
        return Verdict(True, overlap, f"Stop: the top-{TOP_N} is stable (overlap {overlap:.2f}). Use `hits`.")
    if round_no >= max_rounds:
        return Verdict(True, overlap, f"Stop: {max_rounds} rounds done. Use `hits`.")
    if feedback_left == 0:
        return Verdict(True, overlap, "Stop: no unseen passages left to learn from. Use `hits`.")
    shown = "" if overlap is None else f" (top-{TOP_N} overlap {overlap:.2f})"
    return Verdict(False, overlap, f"Round {round_no + 1}{shown}: read the new `feedback`, correct and extend "
                   "your previous expansion (do not start over), then call deep_search with "
                   "expansions=[refined passage] and this `round` token.")  # fmt: skip
