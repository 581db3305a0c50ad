"""Documents and DIVER stage 1 preprocessing: cleaning, token chunking with overlap, chunk→document MAX roll-up."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from diver.errors import InputError
from diver.text.citations import LOCATIONS_KEY

MAX_ID_CHARS = 512
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
_TRAILING = re.compile(r"[ \t]+\n")


def clean_text(text: str) -> str:
    """Normalise unicode (NFKC), drop control characters, collapse runs of spaces and of blank lines."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


class Document(BaseModel):
    """A document to index: an id, its text and optional JSON metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("document id is blank")
        if "\x00" in value or any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("document id contains control characters")
        return value

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata is not JSON-serialisable: {exc}") from exc
        return value

    @property
    def title(self) -> str:
        """First non-empty line, cut to 120 characters."""
        for line in self.text.splitlines():
            if line.strip():
                return line.strip()[:120]
        return ""


def make_document(
    doc_id: Any, text: Any, metadata: Any = None, *, max_bytes: int | None = None, precleaned: bool = False
) -> Document:
    """Validate and clean one document, raising ``InputError`` with the id in the message.

    ``precleaned=True``: the text was cleaned line by line already (``diver.text.formats``, which keeps the
    indentation of code and the offsets of its location map); only blank text is refused then.
    """
    if not isinstance(text, str):
        raise InputError(f"document {doc_id!r}: text must be a string, got {type(text).__name__}")
    if max_bytes is not None and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InputError(f"document {doc_id!r}: text exceeds the limit of {max_bytes} bytes")
    text = text.encode("utf-8", "replace").decode("utf-8")
    cleaned = text if precleaned and text.strip() else clean_text(text)
    if not cleaned:
        raise InputError(f"document {doc_id!r}: text is empty after cleaning")
    try:
        return Document(id=str(doc_id) if doc_id is not None else "", text=cleaned, metadata=metadata or {})
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise InputError(f"document {doc_id!r}: {_first_error(exc)}") from exc


def check_limits(doc: Document, max_bytes: int, max_metadata_bytes: int) -> None:
    """Refuse (``InputError``) a document the engine must not store, whatever the entry point: text over
    ``max_bytes`` bytes of UTF-8, metadata over ``max_metadata_bytes`` bytes of JSON, blank text, NUL or
    lone surrogates in the text."""
    try:
        size = len(doc.text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InputError(f"document {doc.id!r}: text is not valid unicode ({exc.reason})") from exc
    if size > max_bytes:
        raise InputError(
            f"document {doc.id!r}: text is {size} bytes; the limit is {max_bytes} (limits.max_document_bytes)"
        )
    if not doc.text.strip():
        raise InputError(f"document {doc.id!r}: text is empty")
    if "\x00" in doc.text:
        raise InputError(f"document {doc.id!r}: text contains NUL characters")
    meta = len(json.dumps(doc.metadata, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if meta > max_metadata_bytes:
        raise InputError(
            f"document {doc.id!r}: metadata is {meta} bytes of JSON; the limit is {max_metadata_bytes} "
            "(limits.max_metadata_bytes)"
        )


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}".strip(": ")
    return str(exc)


def dedupe_last_wins(docs: Sequence[Document]) -> tuple[list[Document], list[str]]:
    """Keep the last document of each id, in first-seen order. Returns (documents, duplicated ids)."""
    by_id: dict[str, Document] = {}
    duplicates: list[str] = []
    for doc in docs:
        if doc.id in by_id and doc.id not in duplicates:
            duplicates.append(doc.id)
        by_id[doc.id] = doc
    return list(by_id.values()), duplicates


def content_hash(doc: Document) -> str:
    """Digest of (id, text, metadata): unchanged documents are skipped on re-index; chunk keys derive from it."""
    payload = json.dumps([doc.id, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=8).hexdigest()


class TokenSpanner(Protocol):
    """Splits text into tokens and returns each token's character span (start, end)."""

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


class RegexSpanner:
    """Fallback tokenizer for embedders without a local tokenizer: words and single punctuation marks."""

    _TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._TOKEN.finditer(text)]


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    index: int
    text: str
    start: int
    end: int


def chunk_document(
    doc: Document,
    spanner: TokenSpanner,
    max_tokens: int,
    overlap: float,
    spans: Sequence[tuple[int, int]] | None = None,
) -> list[Chunk]:
    """Cut a document into windows of ``max_tokens`` tokens, consecutive windows sharing ``overlap`` of them.
    ``spans``: the document's token spans when the caller tokenized a whole batch at once."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    if spans is None:
        spans = spanner.token_spans(doc.text)
    locations = doc.metadata.get(LOCATIONS_KEY)
    locations = locations if isinstance(locations, dict) else {}
    pages = [int(a[0]) for a in locations.get("pages") or []]
    if not spans or (len(spans) <= max_tokens and len(pages) < 2):
        return [Chunk(doc.id, 0, doc.text, 0, len(doc.text))]
    if locations.get("breaks") or len(pages) > 1:
        return _chunk_at_definitions(doc, spans, max_tokens, overlap, locations.get("breaks") or [], pages)
    step = max(1, max_tokens - int(round(max_tokens * overlap)))
    chunks: list[Chunk] = []
    start_tok = 0
    while True:
        end_tok = min(start_tok + max_tokens, len(spans))
        start_char, end_char = spans[start_tok][0], spans[end_tok - 1][1]
        chunks.append(Chunk(doc.id, len(chunks), doc.text[start_char:end_char], start_char, end_char))
        if end_tok >= len(spans):
            return chunks
        start_tok += step


def _chunk_at_definitions(
    doc: Document, spans: Sequence[tuple[int, int]], max_tokens: int, overlap: float, breaks: list[int],
    pages: list[int],
) -> list[Chunk]:  # fmt: skip
    """Chunks that never cross a definition (code) or section boundary, except to pack whole small ones
    together up to ``max_tokens``, and never a page boundary (PDF: a chunk cites one page); a definition,
    section or page longer than ``max_tokens`` is cut into windows with overlap."""
    starts = [a for a, _ in spans]
    hard = {bisect_left(starts, int(b)) for b in pages}
    cuts = sorted({bisect_left(starts, int(b)) for b in breaks} | hard | {0, len(spans)})
    step = max(1, max_tokens - int(round(max_tokens * overlap)))
    windows: list[tuple[int, int]] = []
    pack: list[int] | None = None
    for first, last in zip(cuts, cuts[1:], strict=False):
        if pack is not None and last - pack[0] <= max_tokens and first not in hard:
            pack[1] = last
            continue
        if pack is not None:
            windows.append((pack[0], pack[1]))
            pack = None
        if last - first <= max_tokens:
            pack = [first, last]
            continue
        for begin in range(first, last, step):
            windows.append((begin, min(begin + max_tokens, last)))
            if begin + max_tokens >= last:
                break
    if pack is not None:
        windows.append((pack[0], pack[1]))
    chunks: list[Chunk] = []
    for first, last in windows:
        a, b = spans[first][0], spans[last - 1][1]
        chunks.append(Chunk(doc.id, len(chunks), doc.text[a:b], a, b))
    return chunks


@dataclass(frozen=True)
class ChunkScore:
    doc_id: str
    chunk_index: int
    score: float


@dataclass(frozen=True)
class DocScore:
    doc_id: str
    score: float
    best_chunk: int


def rollup_max(scores: Iterable[ChunkScore]) -> list[DocScore]:
    """Document score = MAX over its chunks' scores; the argmax chunk is the highlight. Sorted best first."""
    best: dict[str, DocScore] = {}
    for item in scores:
        current = best.get(item.doc_id)
        if current is None or item.score > current.score:
            best[item.doc_id] = DocScore(item.doc_id, float(item.score), item.chunk_index)
    return sorted(best.values(), key=lambda d: (-d.score, d.doc_id))
