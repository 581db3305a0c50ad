"""The chroma backend: embedded ``PersistentClient`` in the data dir by default, ``HttpClient`` for a Chroma
server (``store.chroma_url``).

Collections are created with our own embeddings (``embedding_function=None``: chromadb never downloads
its ONNX model) and explicit HNSW settings (chromadb's defaults give poor recall). This is the only module
that imports chromadb.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast, get_args
from urllib.parse import urlparse

import numpy as np

from diver.config import StoreSettings
from diver.errors import ConfigError, StateError, VectorStoreUnavailable
from diver.index.stores.base import Space, StoreBackend, VectorStore

log = logging.getLogger(__name__)
CHROMA_PAGE = 5000  # chromadb refuses very large single add/get/delete calls
MAX_STORE_NAME = 63  # chromadb 0.x limit (1.x allows 512); the short one keeps both working


def store_collection_name(store_id: str, collection: str, version: int | None = None) -> str:
    """The chroma collection name for a DIVER collection (``version``: a dense rebuild's copy).

    ``<store id>.<collection>[.v<version>]``: '.' never occurs in a DIVER collection name, so names of
    different collections or data directories cannot collide. Too long a name keeps a prefix of the
    collection name plus a hash of all of it. The name is recorded in meta.json and only ever used exactly.
    """
    suffix = f".v{version}" if version is not None else ""
    name = f"{store_id}.{collection}{suffix}"
    if len(name) <= MAX_STORE_NAME:
        return name
    digest = hashlib.sha256(collection.encode("utf-8")).hexdigest()[:8]
    keep = MAX_STORE_NAME - len(store_id) - len(suffix) - len(digest) - 3
    return f"{store_id}.{collection[:keep]}.h{digest}{suffix}"


def _chroma() -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb

    return chromadb


def open_client(settings: StoreSettings, data_dir: Path) -> Any:
    """A chromadb client: ``HttpClient`` for ``store.chroma_url``, else ``PersistentClient`` in data_dir/chroma."""
    chromadb = _chroma()
    from chromadb.config import Settings

    chroma_settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"store.chroma_url must be http(s)://host[:port], got {settings.chroma_url!r}")
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    path = data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class ChromaBackend(StoreBackend):
    """Vector collections in chromadb (embedded in ``data_dir/chroma``, or a Chroma server)."""

    kind = "chroma"
    lazy_persistence = True  # chromadb persists its HNSW graph lazily: a kill -9 can lose acknowledged vectors

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.private = not settings.chroma_url
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The chromadb client (opened on first use)."""
        if self._client is None:
            self._client = open_client(self.settings, self.data_dir)
        return self._client

    def open(self, name: str, create: bool) -> ChromaStore:
        return ChromaStore(self.client, name, self.settings, create=create)

    def names(self) -> list[str]:
        return [c if isinstance(c, str) else c.name for c in self.client.list_collections()]

    def drop(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception as exc:  # noqa: BLE001 - chromadb raises untyped NotFound errors
            if "does not exist" not in str(exc).lower() and "not found" not in str(exc).lower():
                raise StateError(f"cannot drop vector collection {name!r}: {exc}") from exc

    def store_name(self, store_id: str, collection: str, version: int | None = None) -> str:
        return store_collection_name(store_id, collection, version)

    def legacy_names(self, collection: str) -> list[str]:
        # a private embedded store named a collection's vectors after it before data-dir namespaces
        return [collection] if self.private else []

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            # chromadb caches one embedded client per path and process: a later Engine here must read
            # what another process (the shared engine) wrote since, not this client's stale HNSW.
            self._client.close()
        self._client = None


class ChromaStore(VectorStore):
    """One chroma collection of chunk vectors, keyed by chunk key."""

    def __init__(self, client: Any, name: str, settings: StoreSettings, create: bool) -> None:
        self.name = name
        self.settings = settings
        self._client = client
        configuration = {
            "hnsw": {
                "space": settings.hnsw_space,
                "ef_construction": settings.hnsw_construction_ef,
                "ef_search": settings.hnsw_search_ef,
                "max_neighbors": settings.hnsw_max_neighbors,
                "sync_threshold": settings.hnsw_sync_threshold,
            }
        }
        try:
            if create:
                self._collection = client.get_or_create_collection(
                    name, configuration=configuration, embedding_function=None
                )
            else:
                self._collection = client.get_collection(name, embedding_function=None)
        except Exception as exc:  # noqa: BLE001 - chromadb raises many untyped errors; we re-raise typed
            raise StateError(f"vector store for collection {name!r} cannot be opened: {exc}") from exc
        self.space = self._stored_space()

    def _stored_space(self) -> Space:
        """The space the collection was created with (an existing collection keeps its own), else the setting."""
        try:
            stored = ((self._collection.configuration_json or {}).get("hnsw") or {}).get("space")
        except Exception:  # noqa: BLE001 - older servers may not report a configuration
            stored = None
        if stored in get_args(Space):
            return cast(Space, stored)
        return self.settings.hnsw_space

    def count(self) -> int:
        with _unavailable_as_typed(self.name, "count"):
            return int(self._collection.count())

    def upsert(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        for start in range(0, len(keys), CHROMA_PAGE):
            part = slice(start, start + CHROMA_PAGE)
            with _unavailable_as_typed(self.name, "write"):
                self._collection.upsert(
                    ids=list(keys[part]), embeddings=np.asarray(vectors[part], dtype=np.float32)
                )

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """chroma's ``add`` costs ~20% less than ``upsert`` (no update path); a key it already holds keeps its
        stored vector, which is the same one (content-addressed keys)."""
        for start in range(0, len(keys), CHROMA_PAGE):
            part = slice(start, start + CHROMA_PAGE)
            with _unavailable_as_typed(self.name, "write"):
                self._collection.add(
                    ids=list(keys[part]), embeddings=np.asarray(vectors[part], dtype=np.float32)
                )

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), CHROMA_PAGE):
            with _unavailable_as_typed(self.name, "delete"):
                self._collection.delete(ids=list(keys[start : start + CHROMA_PAGE]))

    def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), CHROMA_PAGE):
            try:
                got = self._collection.get(ids=list(keys[start : start + CHROMA_PAGE]), include=["embeddings"])
            except Exception as exc:  # noqa: BLE001 - chromadb raises untyped internal errors
                raise StateError(f"vector store {self.name!r} cannot read vectors: {exc}") from exc
            for key, vector in zip(got["ids"], got["embeddings"], strict=True):
                out[key] = np.asarray(vector, dtype=np.float32)
        return out

    def all_keys(self) -> list[str]:
        keys: list[str] = []
        offset = 0
        while True:
            with _unavailable_as_typed(self.name, "read"):
                page = self._collection.get(include=[], limit=CHROMA_PAGE, offset=offset)["ids"]
            keys.extend(page)
            if len(page) < CHROMA_PAGE:
                return keys
            offset += len(page)

    def query(
        self, vectors: np.ndarray, n: int, keys: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """No ``count()`` first (it costs about a millisecond): chroma returns fewer than ``n`` when it holds
        fewer. While the loaded index's beam is below ``hnsw_search_ef`` (see ``search_beam``), at least
        that many results are asked for, so the beam is never narrower than configured. ``keys``: chroma's
        ``ids`` pre-filter."""
        if n <= 0 or len(vectors) == 0 or (keys is not None and not keys):
            return [[] for _ in range(len(vectors))]
        asked = max(n, self.search_beam())
        restrict = {"ids": list(keys)} if keys is not None else {}
        with _unavailable_as_typed(self.name, "search"):
            try:
                result = self._collection.query(
                    query_embeddings=np.asarray(vectors, dtype=np.float32),
                    n_results=asked,
                    include=["distances"],
                    **restrict,
                )
            except Exception as exc:  # noqa: BLE001 - chromadb raises untyped errors on an empty index
                if type(exc).__module__.split(".")[0] in {"httpx", "httpcore"} or self.count() > 0:
                    raise
                return [[] for _ in range(len(vectors))]
        out = []
        for ids, distances in zip(result["ids"], result["distances"], strict=True):
            if self.space in ("cosine", "ip"):
                sims = [1.0 - float(d) for d in distances[:n]]
            else:
                sims = [-float(d) for d in distances[:n]]
            out.append(list(zip(ids[:n], sims, strict=True)))
        return out

    def search_beam(self) -> int:
        """Results to ask for at least: 0 when the loaded index's ef_search is the configured one, else
        ``hnsw_search_ef``. The first call also stores the configured ef_search in the collection's
        configuration when it differs (a collection made with other settings), which chroma applies when
        it next loads the index (a new process); until then asking for more results widens the beam."""
        beam = getattr(self, "_beam", None)
        if beam is not None:
            return int(beam)
        wanted = self.settings.hnsw_search_ef
        try:
            stored = int(((self._collection.configuration_json or {}).get("hnsw") or {}).get("ef_search") or 0)
        except Exception:  # noqa: BLE001 - older servers may not report a configuration
            stored = 0
        if stored and stored != wanted:
            try:
                self._collection.modify(configuration={"hnsw": {"ef_search": wanted}})
                log.info("vector store %s: ef_search %d -> %d (applies when the index is next loaded)",
                         self.name, stored, wanted)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a server that refuses: the result floor still applies
                log.warning("vector store %s: cannot set ef_search to %d: %s", self.name, wanted, exc)
        self._beam = wanted if stored and stored < wanted else 0
        return self._beam


@contextmanager
def _unavailable_as_typed(name: str, what: str) -> Iterator[None]:
    """A Chroma server that is down or unreachable raises httpx/OS errors: report them typed."""
    try:
        yield
    except (OSError, ConnectionError) as exc:
        raise VectorStoreUnavailable(f"vector store {name!r} is unreachable ({what}): {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - httpx's transport errors are not OSError subclasses
        if type(exc).__module__.split(".")[0] in {"httpx", "httpcore"}:
            raise VectorStoreUnavailable(
                f"vector store {name!r} is unreachable ({what}): {type(exc).__name__}: {exc}"
            ) from exc
        raise
