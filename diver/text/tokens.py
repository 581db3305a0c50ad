"""Cheap token counting and truncation for prompt budgets (no tokenizer download, no tiktoken).

Tokens are approximated by a regex (words and single punctuation marks); long words count as several
tokens (one per ~4 characters) since subword tokenizers split them. Good to ~20% for English prose,
which is all a budget needs.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_CHARS_PER_SUBWORD = 4


def _weight(match: re.Match[str]) -> int:
    return max(1, -(-len(match.group()) // _CHARS_PER_SUBWORD)) if len(match.group()) > 6 else 1


def approx_tokens(text: str) -> int:
    """Approximate number of LLM tokens in ``text``."""
    return sum(_weight(m) for m in _TOKEN.finditer(text))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """Cut ``text`` after about ``max_tokens`` tokens, at a token boundary (original spacing kept)."""
    if max_tokens <= 0:
        return ""
    used = 0
    for match in _TOKEN.finditer(text):
        used += _weight(match)
        if used > max_tokens:
            return text[: match.start()].rstrip()
    return text
