"""The document-store interface: a backend that holds a collection's chunk rows, not only its vectors.

With the default backend a DIVER process keeps the catalog (SQLite) and BM25 in its data directory and
only the vectors in the store. A backend that also holds documents (``StoreBackend.documents()`` returns a
``DocumentStore``) is the single source of truth instead: chunk rows (document id, content hash, chunk
index and span, chunk text, metadata, dense vector, a lexical field that the engine turns into a BM25
sparse vector) live in it, and a frontend holds nothing another frontend needs
(``diver.index.stateless.StatelessCollection`` runs a collection on it).

Visibility: every row carries the generation of the batch that wrote it; a collection's ``watermark`` is
the last committed generation, and reads see only rows at or below the watermark they read first, so a
batch becomes visible at once, when its commit (one row) is written. One writer per collection at a
time (writes are serialised within a process; see docs/scaling.md for several frontends).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diver.text.documents import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1
"""Version of the row layout a DIVER release writes; a collection stored with another one is refused."""


@dataclass(frozen=True)
class RowDocument:
    """One document to write: its content hash (chunk keys derive from it), chunks and their lexical text."""

    document: Document
    hash: str
    chunks: list[Chunk]
    lexical: list[str]  # per chunk: the analysed tokens, space-separated (the BM25 function's input)

    @property
    def keys(self) -> list[str]:
        return [f"{self.hash}-{c.index}" for c in self.chunks]


@dataclass
class StoredDocument:
    """A document read back from the rows, with its chunks' spans (index -> (start, end))."""

    document: Document
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)


ChunkHit = tuple[str, int, float, int]  # (doc id, chunk index, score, generation)


@dataclass(frozen=True)
class Snapshot:
    """What one read sees: the committed generation and the row filter derived from it (plus a where)."""

    watermark: int
    condition: str


class DocumentRows(ABC):
    """One collection's chunk rows and its meta (a dict: embedder, dimensions, chunking, watermark...)."""

    name: str
    meta: dict[str, Any]
    max_results: int = 16384
    """The most chunks one search may return (Milvus' topk limit)."""

    @abstractmethod
    def refresh(self, fresh: bool = True) -> dict[str, Any]:
        """Read the collection's meta again (the watermark another frontend may have moved); ``fresh``: at
        Strong consistency, else at the configured level."""

    @abstractmethod
    def snapshot(self, where: dict[str, Any] | None = None, source: str | None = None, fresh: bool = False) -> Snapshot:
        """The current committed view, restricted by a metadata filter / source prefix (translated; an
        InputError for what cannot be). The commit is read at the configured consistency level, before the
        rows, so a weaker level may show a batch later but never in part; ``fresh``: the latest commit
        whatever the level (what a writer builds on)."""

    @abstractmethod
    def hashes(self, ids: Sequence[str], snap: Snapshot) -> dict[str, str]:
        """Content hash of each visible document among ``ids``."""

    @abstractmethod
    def write(self, docs: Sequence[RowDocument], vectors: np.ndarray, generation: int) -> None:
        """Write (upsert by chunk key) the rows of a batch under ``generation``: invisible until committed."""

    @abstractmethod
    def commit(self, generation: int, replacing: Sequence[str]) -> None:
        """Make ``generation`` visible (one meta write), recording the replaced documents whose older
        rows ``reconcile`` removes."""

    def flush_if_due(self) -> bool:
        """At an upsert's end: ask the server to seal and index what was written, where it needs asking
        (True if it did). Nothing to do for a store that indexes on write."""
        return False

    @abstractmethod
    def reconcile(self) -> None:
        """Remove rows above the watermark (a crashed batch) and the older rows of replaced documents."""

    @abstractmethod
    def delete_documents(self, ids: Sequence[str]) -> int:
        """Delete documents by id; returns how many were visible."""

    @abstractmethod
    def counts(self, snap: Snapshot) -> tuple[int, int]:
        """(documents, chunks) visible in ``snap``."""

    @abstractmethod
    def lexical_top(self, texts: Sequence[str], n: int, snap: Snapshot) -> list[list[ChunkHit]]:
        """The ``n`` best chunks per analysed query text by the server's BM25, best first."""

    @abstractmethod
    def dense_top(self, vectors: np.ndarray, n: int, snap: Snapshot) -> list[list[ChunkHit]]:
        """The ``n`` nearest chunks per query vector (similarity, higher is better), best first."""

    @abstractmethod
    def documents(self, ids: Sequence[str], snap: Snapshot) -> dict[str, StoredDocument]:
        """Visible documents by id, rebuilt from their chunk rows (absent ids are left out)."""

    @abstractmethod
    def chunk_count(self, doc_id: str, snap: Snapshot) -> int | None:
        """How many chunks a visible document has; None when it is not visible."""

    @abstractmethod
    def chunk_rows(self, doc_id: str, first: int, last: int, snap: Snapshot) -> list[tuple[int, int, int, str]]:
        """(index, start, end, text) of the chunks ``first..last`` of a visible document."""


class DocumentStore(ABC):
    """Where a backend's collections of chunk rows live: created, listed, opened and dropped by name,
    across every frontend of a deployment."""

    @abstractmethod
    def names(self) -> list[str]:
        """The DIVER collections of this deployment."""

    @abstractmethod
    def open(self, name: str) -> DocumentRows | None:
        """The collection ``name``, None when it does not exist (a CorruptIndex on a schema mismatch)."""

    @abstractmethod
    def create(self, name: str, meta: dict[str, Any]) -> DocumentRows:
        """Create the collection with its meta (written last: a half-made one is not listed)."""

    @abstractmethod
    def drop(self, name: str) -> bool:
        """Delete the collection; False when it did not exist."""
