"""The vector-store interface: what a collection needs from wherever its chunk vectors live.

Two levels, so that a backend can be a client of a server shared by many data directories:

* ``StoreBackend`` — one per engine (an embedded database in the data dir, or a client of a server):
  opens, lists and drops named vector collections, and names them.
* ``VectorStore`` — one named vector collection: chunk vectors keyed by chunk key, with add / upsert /
  delete by key, reads by key, count, and nearest-neighbour queries (optionally restricted to keys).

Everything else — which chunks are visible, documents, filters on metadata, BM25 — is the catalog's
(``diver.index.catalog``). A collection switches its vectors to another named store (a dense rebuild, a
reindex with another model) through ``diver.index.switch``, which uses only this interface.

A backend is chosen by ``store.backend`` and registered in ``diver.index.stores.BACKENDS``.
"""

from __future__ import annotations

import os
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from diver.errors import StateError

if TYPE_CHECKING:
    import numpy as np

    from diver.index.stores.documents import DocumentStore

Space = Literal["cosine", "ip", "l2"]
"""How a store's similarity is computed: 1 - cosine distance, inner product, or -squared L2."""

STORE_ID_FILE = "store-id"
_STORE_ID = re.compile(r"^[0-9a-z]{4,16}$")


class VectorStore(ABC):
    """One named collection of chunk vectors, keyed by chunk key.

    Keys are content-addressed by the collection (``<hash of document id and content>-<chunk index>``), so
    a key's vector never changes within one store: ``add`` may skip what a backend already holds.
    Unreachable backends raise ``VectorStoreUnavailable``; other failures ``StateError``.
    """

    name: str
    space: Space

    @abstractmethod
    def count(self) -> int:
        """How many vectors the store holds."""

    @abstractmethod
    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Write vectors under keys the store does not hold (or holds with the same vector). A backend
        without a cheaper insert path than ``upsert`` may upsert."""

    @abstractmethod
    def upsert(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Write vectors, replacing any stored under the same keys."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> None:
        """Remove vectors by key (keys the store does not hold are ignored)."""

    @abstractmethod
    def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by key (keys the store does not hold are absent)."""

    @abstractmethod
    def all_keys(self) -> list[str]:
        """Every key the store holds."""

    @abstractmethod
    def query(
        self, vectors: np.ndarray, n: int, keys: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """The ``n`` nearest keys per query vector with their similarity (``space``), best first; fewer when
        the store holds fewer. ``keys``: only these keys are candidates (a filter the backend applies
        before its top-n cut)."""


class StoreBackend(ABC):
    """Where an engine's vector collections live: opens, lists, names and drops them."""

    kind: ClassVar[str]
    """The ``store.backend`` value that selects this backend."""
    private: bool
    """True when the store belongs to this data directory alone (an embedded database in it); False for a
    server that other data directories may share (then only names under this data dir's id are ours)."""
    lazy_persistence: bool
    """True when a vector write acknowledged by the backend can still be lost by a crash of this process
    (an index persisted lazily): the collection then marks write calls and rebuilds the dense index from
    the stored vectors after an interrupted one (``Collection.recover``)."""

    @abstractmethod
    def open(self, name: str, create: bool) -> VectorStore:
        """The store ``name``; ``create``: make it (with the configured index settings) when absent."""

    @abstractmethod
    def names(self) -> list[str]:
        """Names of every vector collection the backend holds (all data directories', for a server)."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Delete the store ``name``; a name that does not exist is not an error."""

    @abstractmethod
    def store_name(self, store_id: str, collection: str, version: int | None = None) -> str:
        """The exact store name of a DIVER collection of the data dir ``store_id`` (``version``: a copy made
        by a rebuild or reindex). Names of different collections or data dirs never collide."""

    def documents(self) -> DocumentStore | None:
        """The backend's document store when it holds whole collections (chunk rows, vectors and BM25:
        ``diver.index.stores.documents``); None when it holds vectors only (the catalog and BM25 stay local)."""
        return None

    def legacy_names(self, collection: str) -> list[str]:
        """Names older releases gave a collection's vectors (dropped with it when meta.json is unreadable)."""
        return []

    @abstractmethod
    def close(self) -> None:
        """Release the client (an embedded backend: let a later engine in this process read fresh files)."""


def data_dir_store_id(data_dir: Path) -> str:
    """This data directory's namespace for vector collection names, created once and kept in the data dir.

    Two data directories sharing one vector server then never touch each other's collections. The
    caller holds the data-directory lock, so creating the file cannot race another DIVER process.
    """
    path = data_dir / STORE_ID_FILE
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if not _STORE_ID.match(value):
            raise StateError(
                f"{path} holds {value[:40]!r}, not a store id (4-16 lowercase letters or digits); "
                "restore it from a backup: collections' vectors are named after it"
            )
        return value
    value = secrets.token_hex(6)
    tmp = path.with_name(STORE_ID_FILE + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return value
