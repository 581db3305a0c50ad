"""Queries get the same cleaning as documents (unicode NFKC, control characters, whitespace), after checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diver.errors import InputError
from diver.text.documents import clean_text


def _check_query(query: Any, max_chars: int) -> None:
    if not isinstance(query, str):
        raise InputError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise InputError("query is empty")
    if len(query) > max_chars:
        raise InputError(
            f"query is {len(query)} characters; the limit is {max_chars} (limits.max_query_chars)"
        )
    if "\x00" in query:
        raise InputError("query contains NUL bytes")


def prepare_queries(queries: Sequence[Any], max_chars: int) -> list[str]:
    """Checked and cleaned queries: what BM25 tokenizes and the embedder embeds, exactly as for documents."""
    cleaned = []
    for query in queries:
        _check_query(query, max_chars)
        text = clean_text(query)
        if not text:
            raise InputError("query is empty after unicode and whitespace cleaning")
        cleaned.append(text)
    return cleaned
