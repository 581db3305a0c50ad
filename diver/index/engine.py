"""The retrieval engine: named collections that keep a BM25 index and a dense index consistent.

Layout of ``data_dir``::

    .lock                     one process at a time (a clear IndexLocked error otherwise)
    store-id                  this data dir's namespace in vector-store names (see stores/base.py)
    collections/<name>/meta.json    embedder id, dimensions, chunking, the exact vector-store names
                              (written last: its absence = half-created)
    collections/<name>/catalog.sqlite   documents and chunks: what is visible (see catalog.py)
    collections/<name>/bm25/   BM25 segments (seg-<id>/) and gen-<N>.json, the segments and deleted
                              documents of generation N of the catalog (see lexical_store.py)
    chroma/                   the embedded vector store of the default backend (vectors by chunk key)
    cache/                    embedding and LLM caches
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diver.config import DiverSettings, load_settings
from diver.errors import CollectionNotFound, CorruptIndex, IndexLocked, InputError
from diver.hits import CollectionInfo
from diver.index.catalog import Catalog
from diver.index.collection import Collection
from diver.index.dense.backends import last_choice
from diver.index.dense.embedders import Embedder, build_embedder
from diver.index.meta import META_FORMAT, STALE_STORE_NAMES, read_meta, write_meta
from diver.index.stores import StoreBackend, data_dir_store_id, open_backend
from diver.index.stores.documents import DocumentStore

log = logging.getLogger(__name__)
__all__ = ["META_FORMAT", "STALE_STORE_NAMES", "Engine", "validate_collection_name", "write_meta"]
LockContention = Callable[[Path, Any], bool]
"""Asked when the data directory's lock is held: (data_dir, the FileLock) -> whether it now holds it."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]$")


RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))]
)
"""Device names on Windows file systems (any case): a folder so named cannot be created or copied there,
so a data directory holding one could not move to Windows or a share it mounts. Refused everywhere."""


def validate_collection_name(name: Any, max_length: int = 63) -> str:
    """3..max_length characters of letters, digits, '-' and '_', starting and ending alphanumeric, and not
    a Windows device name (``con``, ``NUL``, ``com1``...)."""
    if not isinstance(name, str):
        raise InputError(f"collection name must be a string, got {type(name).__name__}")
    if not 3 <= len(name) <= max_length or not _NAME.match(name) or not name.isascii():
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InputError(
            f"invalid collection name {shown!r}: use 3-{max_length} ASCII letters, digits, '-' or '_', "
            "starting and ending with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise InputError(
            f"invalid collection name {name!r}: it is a reserved device name on Windows file systems "
            "(con, prn, aux, nul, com1-9, lpt1-9); choose another"
        )
    return name


class Engine:
    """Opens a data directory and hands out collections. One instance per process and data directory."""

    def __init__(
        self,
        settings: DiverSettings | None = None,
        embedder: Embedder | None = None,
        on_locked: LockContention | None = None,
    ) -> None:
        """``on_locked(data_dir, lock)``: called when another process holds the data directory; True when it
        has handed the lock over (``diver.service.local_engine`` passes the shared engine's hand-over)."""
        self.settings = settings or load_settings()
        self.data_dir = self.settings.data_dir
        private_data_dir(self.data_dir)
        (self.data_dir / "collections").mkdir(parents=True, exist_ok=True)
        self._lock_file = _acquire_lock(self.data_dir, on_locked)
        try:
            self.store_id = data_dir_store_id(self.data_dir)
        except BaseException:
            self._lock_file.release()
            raise
        self._embedder = embedder
        self._backend: StoreBackend | None = None
        self._collections: dict[str, Collection] = {}
        self._guard = threading.RLock()

    # -- shared resources (lazy) ------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        with self._guard:
            if self._embedder is None:
                self._embedder = build_embedder(self.settings.embedding, self.settings.resolved_cache_dir)
            return self._embedder

    @property
    def backend(self) -> StoreBackend:
        """Where the collections' vectors live (``store.backend``), opened on first use."""
        with self._guard:
            if self._backend is None:
                self._backend = open_backend(self.settings.store, self.data_dir)
            return self._backend

    def _dir(self, name: str) -> Path:
        return self.data_dir / "collections" / name

    # -- collections ------------------------------------------------------------------------------
    def collection_names(self) -> list[str]:
        documents = self.backend.documents()
        if documents is not None:
            return documents.names()  # the deployment's collections, whichever frontend made them
        root = self.data_dir / "collections"
        return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "meta.json").exists())

    def list_collections(self) -> list[CollectionInfo]:
        backend = self.embedding_backend()
        return [
            self.collection(name).info().model_copy(update={"embedding_backend": backend})
            for name in self.collection_names()
        ]

    def embedding_backend(self) -> str:
        """The embedding runtime: the loaded embedder's, else the last one recorded in the cache dir."""
        embedding = self.settings.embedding
        if embedding.provider != "sentence-transformers":
            return embedding.provider
        choice = getattr(self._embedder, "backend_choice", None)
        if choice is not None:
            return str(choice.summary())
        if embedding.backend != "auto":
            return embedding.backend
        recorded = last_choice(self.settings.resolved_cache_dir, embedding.model)
        return recorded or "auto (decided when the model first loads)"

    def collection(self, name: str, create: bool = False) -> Collection:
        name = validate_collection_name(name, self.settings.limits.max_collection_name)
        with self._guard:
            if (documents := self.backend.documents()) is not None:
                return self._stateless(name, create, documents)
            if name in self._collections:
                return self._collections[name]
            directory = self._dir(name)
            meta_path = directory / "meta.json"
            if not meta_path.exists():
                if directory.exists() and any(directory.iterdir()) and not create:
                    raise CorruptIndex(
                        f"collection {name!r} is half-created (no meta.json in {directory}); "
                        f"run `diver drop {name}` and index again"
                    )
                if not create:
                    raise CollectionNotFound(name, self.collection_names())
                if (directory / "meta.dropping.json").exists():
                    self.drop(name)  # finish an interrupted drop before creating the collection afresh
                meta = self._create(name, directory)
            else:
                meta = read_meta(meta_path, name)
            catalog = Catalog(directory / "catalog.sqlite", create=False)
            store = self.backend.open(meta["store_name"], create=True)
            collection = Collection(self, name, directory, meta, catalog, store)
            collection.recover()  # the engine holds the data-dir lock: finishing a crashed write is safe
            self._collections[name] = collection
            return collection

    def _stateless(self, name: str, create: bool, documents: DocumentStore) -> Collection:
        """A collection held by the backend (documents, vectors, BM25): nothing in the data dir."""
        from diver.index.stateless import StatelessCollection, open_stateless

        cached = self._collections.get(name)
        rows = documents.open(name)  # another frontend may have dropped or re-created it since
        if (
            isinstance(cached, StatelessCollection)
            and rows is not None
            and rows.meta.get("created_at") == cached.meta.get("created_at")
        ):
            return cached  # the same collection: its write lock serialises this process's writers
        self._collections.pop(name, None)
        collection = open_stateless(self, documents, name, create, rows)
        if collection is None:
            raise CollectionNotFound(name, documents.names())
        self._collections[name] = collection  # type: ignore[assignment]
        return collection  # type: ignore[return-value]

    def _create(self, name: str, directory: Path) -> dict[str, Any]:
        embedder = self.embedder
        budget = self.settings.chunking.max_tokens or embedder.chunk_token_budget()  # type: ignore[attr-defined]
        directory.mkdir(parents=True, exist_ok=True)
        Catalog(directory / "catalog.sqlite", create=True).close()
        store_name = self.backend.store_name(self.store_id, name)
        # The name belongs to this data dir and collection only: vectors left by an interrupted drop go.
        self.backend.drop(store_name)
        meta = {
            "format": META_FORMAT,
            "name": name,
            "store_name": store_name,
            "embedder": embedder.id,
            "dimensions": embedder.dimensions,
            "chunk_tokens": budget,
            "chunk_overlap": self.settings.chunking.overlap,
            "query_prefix": self.settings.embedding.query_prefix,
            "document_prefix": self.settings.embedding.document_prefix,
            "prompts": prompts.record() if (prompts := getattr(embedder, "prompts", None)) else None,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_meta(directory, meta)
        log.info(
            "created collection %s (%s, %d dims, %d-token chunks)",
            name,
            embedder.id,
            embedder.dimensions,
            budget,
        )
        return meta

    def drop(self, name: str) -> None:
        name = validate_collection_name(name, self.settings.limits.max_collection_name)
        with self._guard:
            if (documents := self.backend.documents()) is not None:
                self._collections.pop(name, None)
                if not documents.drop(name):
                    raise CollectionNotFound(name, documents.names())
                return
            directory = self._dir(name)
            if not directory.exists():
                raise CollectionNotFound(name, self.collection_names())
            existing = self._collections.pop(name, None)
            if existing is not None:
                existing.close()
            # meta.json is renamed first: a crash mid-drop leaves a half-created collection, never a live
            # one, and the renamed file still names the vector stores to delete when drop is rerun.
            meta_path, dropping = directory / "meta.json", directory / "meta.dropping.json"
            if meta_path.exists():
                os.replace(meta_path, dropping)
            for store_name in self._store_names(name, dropping):
                self.backend.drop(store_name)
            shutil.rmtree(directory)

    def _store_names(self, name: str, meta_path: Path) -> list[str]:
        """Every vector store a DIVER collection's meta records (live, half-built or replaced copies).

        Exact names only, never a prefix: ``notes-v2`` is another collection, not a copy of ``notes``."""
        if meta_path.exists():
            try:
                meta = read_meta(meta_path, name)
                return [meta["store_name"], *meta.get(STALE_STORE_NAMES, [])]
            except CorruptIndex as exc:
                log.warning("%s: dropping the vectors under the names DIVER would have given them", exc)
        return [self.backend.store_name(self.store_id, name), *self.backend.legacy_names(name)]

    def close(self) -> None:
        with self._guard:
            for collection in self._collections.values():
                collection.close()
            self._collections.clear()
            if self._backend is not None:
                self._backend.close()
            self._backend = None
            if self._lock_file is not None:
                self._lock_file.release()
                self._lock_file = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WARNED: set[Path] = set()


def private_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` (and missing parents) with mode 0700: documents, indexes and tokens are the
    user's alone. An existing directory open to group/other is left as it is, with a warning (once)."""
    try:
        data_dir.mkdir(mode=0o700, parents=True)
        data_dir.chmod(0o700)  # whatever the umask
        return
    except FileExistsError:
        pass
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077 and data_dir.resolve() not in _WARNED:
        _WARNED.add(data_dir.resolve())
        log.warning(
            "data directory %s has mode %o: other users may read the documents and indexes in it; "
            "run `chmod 700 %s` unless it is meant to be shared",
            data_dir, mode, data_dir,
        )  # fmt: skip


def _acquire_lock(data_dir: Path, on_locked: LockContention | None) -> Any:
    from filelock import FileLock, Timeout

    lock = FileLock(str(data_dir / ".lock"), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        if on_locked is not None and on_locked(data_dir, lock):
            (data_dir / ".lock.owner").write_text(f"pid {os.getpid()}", encoding="utf-8")
            return lock
        owner = (
            (data_dir / ".lock.owner").read_text(encoding="utf-8").strip()
            if (data_dir / ".lock.owner").exists()
            else "?"
        )
        raise IndexLocked(
            f"data directory {data_dir} is in use by another DIVER process ({owner}); stop it, use its MCP "
            "tools, or point DIVER_DATA_DIR elsewhere"
        ) from exc
    (data_dir / ".lock.owner").write_text(f"pid {os.getpid()}", encoding="utf-8")
    return lock
