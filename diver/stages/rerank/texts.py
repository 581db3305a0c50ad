"""The document texts a reranker reads: full texts cut to a budget, and the reference's newline cleaning.

Shared by every reranker (pointwise, listwise, groupwise, the cross-encoder), so none imports another.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

from diver.errors import DiverError
from diver.hits import SearchHit
from diver.text.tokens import truncate_tokens

log = logging.getLogger(__name__)

_NEWLINES = re.compile(r"\n+")


def clean_document(text: str, max_chars: int) -> str:
    """``re.sub('\\n+', ' ', text)[:max_doc_lens]`` as the reference."""
    return _NEWLINES.sub(" ", text)[:max_chars]


def document_texts(
    candidates: Sequence[SearchHit], get_text: Callable[[str], str], max_tokens: int
) -> dict[str, str]:
    """Full texts cut to ``max_tokens``; the hit's highlight stands in when the text cannot be read."""
    texts: dict[str, str] = {}
    for hit in candidates:
        try:
            text = get_text(hit.id)
        except DiverError as exc:
            log.warning("document %r unavailable (%s); using its highlight", hit.id, exc)
            text = hit.highlight
        texts[hit.id] = truncate_tokens(text, max_tokens)
    return texts
