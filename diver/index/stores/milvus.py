"""The Milvus backend: a Milvus server (standalone, distributed, or ``milvus-lite server`` for tests) holds
each collection's chunk rows, dense vectors and BM25 index (``milvus_rows``), so DIVER frontends are
stateless. It also meets the plain vector-store interface (``MilvusStore``) for the store contract.

Names: every Milvus collection DIVER makes starts with ``<store.milvus_prefix>_`` (the deployment); the
prefix is letters and digits, and DIVER collection names are escaped ('_' -> '_u', '-' -> '_d'), so two
deployments, or two DIVER collections, never share a Milvus name. This module and ``milvus_rows`` are the
only ones that import pymilvus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from diver.config import StoreSettings
from diver.errors import ConfigError, MissingDependency, StateError, VectorStoreUnavailable
from diver.index.stores.base import Space, StoreBackend, VectorStore
from diver.index.stores.documents import DocumentStore

log = logging.getLogger(__name__)
PAGE = 1000  # rows per insert / get / delete request
MAX_TOPK = 16384  # Milvus' limit on one search's results (and on offset + limit of a query)
_UNAVAILABLE_WORDS = ("unavailable", "connect", "deadline", "timeout", "timed out", "socket closed")


def escape_name(name: str) -> str:
    """A DIVER name (letters, digits, '-', '_') as a Milvus name fragment (letters, digits, '_'), injectively."""
    out = []
    for char in name:
        if char == "_":
            out.append("_u")
        elif char == "-":
            out.append("_d")
        elif char.isascii() and char.isalnum():
            out.append(char)
        else:
            raise ConfigError(f"{name!r} cannot be a Milvus collection name (ASCII letters, digits, '-', '_')")
    return "".join(out)


def pymilvus() -> Any:
    try:
        import pymilvus as module
    except ImportError as exc:
        raise MissingDependency("pymilvus", "milvus", "store.backend = 'milvus'") from exc
    return module


def open_client(settings: StoreSettings) -> Any:
    """A ``MilvusClient`` for ``store.milvus_uri``; VectorStoreUnavailable when the server cannot be reached."""
    uri = settings.milvus_uri
    if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
        raise ConfigError(f"store.milvus_uri must be http(s)://host:port, got {uri!r}")
    module = pymilvus()
    kwargs: dict[str, Any] = {"uri": uri, "timeout": settings.milvus_timeout_s}
    if settings.milvus_token is not None:
        kwargs["token"] = settings.milvus_token.get_secret_value()
    if settings.milvus_database:
        kwargs["db_name"] = settings.milvus_database
    with unavailable_as_typed(uri, "connect"):
        return ReloadingClient(module.MilvusClient(**kwargs))


class ReloadingClient:
    """A ``MilvusClient`` whose calls on a released collection load it and retry once: a restarted
    ``milvus-lite server`` (or a collection released by an operator) answers again instead of failing."""

    _ON_COLLECTION = frozenset({"query", "search", "get", "insert", "upsert", "delete", "query_iterator"})

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self._ON_COLLECTION:
            return method

        def call(collection: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(collection, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - only "not loaded" is handled; the rest re-raised as is
                if not _not_loaded(exc):
                    raise
                self._client.load_collection(collection)
                return method(collection, *args, **kwargs)

        return call


def _not_loaded(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "MilvusException" and ("released" in text or "not loaded" in text)


def is_unavailable(exc: BaseException) -> bool:
    """True for the errors of an unreachable or restarting server (gRPC transport errors, pymilvus' own)."""
    names = {type(exc).__name__, *(t.__name__ for t in type(exc).__mro__)}
    if names & {"MilvusUnavailableException", "RpcError", "ConnectionError", "OSError"}:
        return True
    text = str(exc).lower()
    return "MilvusException" in names and any(word in text for word in _UNAVAILABLE_WORDS)


@contextmanager
def unavailable_as_typed(name: str, what: str) -> Iterator[None]:
    """Milvus errors as DIVER's: VectorStoreUnavailable when the server is down, else StateError."""
    try:
        yield
    except (StateError, ConfigError, MissingDependency):
        raise
    except Exception as exc:  # noqa: BLE001 - pymilvus and grpc raise many untyped errors; re-raised typed
        if is_unavailable(exc):
            raise VectorStoreUnavailable(f"Milvus ({name}) is unreachable ({what}): {exc}") from exc
        module = type(exc).__module__.split(".")[0]
        if module in {"pymilvus", "grpc", "milvus_lite"}:
            raise StateError(f"Milvus ({name}) refused {what}: {exc}") from exc
        raise


class MilvusBackend(StoreBackend):
    """Collections in a Milvus server, shared by every frontend of the deployment (``milvus_prefix``)."""

    kind = "milvus"
    private = False
    lazy_persistence = False  # an acknowledged write is in Milvus' write-ahead log

    def __init__(self, settings: StoreSettings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.prefix = settings.milvus_prefix
        self._client: Any = None
        self._documents: DocumentStore | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = open_client(self.settings)
        return self._client

    def documents(self) -> DocumentStore:
        """The chunk-row store: Milvus is the source of truth of documents, vectors and BM25."""
        if self._documents is None:
            from diver.index.stores.milvus_rows import MilvusDocuments

            self._documents = MilvusDocuments(self, self.settings)
        return self._documents

    def list_names(self) -> list[str]:
        with unavailable_as_typed(self.settings.milvus_uri, "list collections"):
            return [str(n) for n in self.client.list_collections()]

    # -- the plain vector-store interface (store contract) -----------------------------------------
    def open(self, name: str, create: bool) -> MilvusStore:
        return MilvusStore(self, name)

    def names(self) -> list[str]:
        head = f"{self.prefix}_v_"
        return [n[len(head) :] for n in self.list_names() if n.startswith(head)]

    def drop(self, name: str) -> None:
        with unavailable_as_typed(self.settings.milvus_uri, f"drop {name}"):
            self.client.drop_collection(f"{self.prefix}_v_{name}")

    def store_name(self, store_id: str, collection: str, version: int | None = None) -> str:
        return f"{store_id}_{escape_name(collection)}" + (f"_r{version}" if version is not None else "")

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception as exc:  # noqa: BLE001 - closing a client of a dead server must not fail shutdown
                log.debug("closing the Milvus client: %s", exc)
        self._client = None
        self._documents = None


class MilvusStore(VectorStore):
    """A plain vector collection in Milvus (key, vector), created on the first write with its dimension."""

    def __init__(self, backend: MilvusBackend, name: str) -> None:
        self.backend = backend
        self.name = name
        self.space: Space = backend.settings.hnsw_space
        self.milvus_name = f"{backend.prefix}_v_{name}"
        self._exists: bool | None = None

    @property
    def client(self) -> Any:
        return self.backend.client

    def _guard(self, what: str) -> Any:
        return unavailable_as_typed(self.milvus_name, what)

    def exists(self) -> bool:
        if not self._exists:
            with self._guard("describe"):
                self._exists = bool(self.client.has_collection(self.milvus_name))
        return bool(self._exists)

    def _create(self, dim: int) -> None:
        module = pymilvus()
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", module.DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", module.DataType.FLOAT_VECTOR, dim=dim)
        index = self.client.prepare_index_params()
        index.add_index("vector", **dense_index(self.backend.settings))
        with self._guard("create"):
            self.client.create_collection(
                self.milvus_name, schema=schema, index_params=index,
                consistency_level=self.backend.settings.milvus_consistency,
            )  # fmt: skip
        self._exists = True

    def count(self) -> int:
        if not self.exists():
            return 0
        with self._guard("count"):
            rows = self.client.query(self.milvus_name, filter="", output_fields=["count(*)"], **self._level())
        return int(rows[0]["count(*)"])

    def _level(self) -> dict[str, Any]:
        return {"consistency_level": self.backend.settings.milvus_consistency}

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        self.upsert(keys, vectors)  # Milvus' insert does not deduplicate primary keys: upsert keeps keys unique

    def upsert(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if not len(keys):
            return
        if not self.exists():
            self._create(int(np.asarray(vectors).shape[1]))
        matrix = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(keys), PAGE):
            rows = [{"key": k, "vector": v.tolist()} for k, v in zip(keys[start : start + PAGE], matrix[start : start + PAGE], strict=True)]
            with self._guard("write"):
                self.client.upsert(self.milvus_name, rows)

    def delete(self, keys: Sequence[str]) -> None:
        if not len(keys) or not self.exists():
            return
        for start in range(0, len(keys), PAGE):
            with self._guard("delete"):
                self.client.delete(self.milvus_name, ids=list(keys[start : start + PAGE]))

    def get_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        if not len(keys) or not self.exists():
            return {}
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), PAGE):
            with self._guard("read"):
                rows = self.client.get(self.milvus_name, ids=list(keys[start : start + PAGE]), output_fields=["vector"])
            for row in rows:
                out[str(row["key"])] = np.asarray(row["vector"], dtype=np.float32)
        return out

    def all_keys(self) -> list[str]:
        if not self.exists():
            return []
        return [str(row["key"]) for row in iterate(self.client, self.milvus_name, "", ["key"], self._level())]

    def query(self, vectors: np.ndarray, n: int, keys: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        if n <= 0 or len(vectors) == 0 or (keys is not None and not keys) or not self.exists():
            return [[] for _ in range(len(vectors))]
        expr = "key in " + _string_list(keys) if keys is not None else ""
        with self._guard("search"):
            result = self.client.search(
                self.milvus_name, data=np.asarray(vectors, dtype=np.float32).tolist(), anns_field="vector",
                limit=min(n, MAX_TOPK), filter=expr, search_params=search_params(self.backend.settings, n),
                **self._level(),
            )  # fmt: skip
        return [[(str(hit["key"]), similarity(float(hit["distance"]), self.space)) for hit in row] for row in result]


def _string_list(values: Sequence[str]) -> str:
    import json

    return "[" + ",".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def metric(space: str) -> str:
    return {"cosine": "COSINE", "ip": "IP", "l2": "L2"}[space]


def dense_index(settings: StoreSettings) -> dict[str, Any]:
    """``add_index`` arguments of a dense vector field from the settings."""
    return {"index_type": settings.milvus_index, "metric_type": metric(settings.hnsw_space),
            "params": dict(settings.milvus_index_params)}  # fmt: skip


def search_params(settings: StoreSettings, limit: int) -> dict[str, Any]:
    params = dict(settings.milvus_search_params)
    if settings.milvus_index == "HNSW":
        params["ef"] = max(int(params.get("ef", 0)), min(limit, MAX_TOPK))  # HNSW needs ef >= limit
    return {"metric_type": metric(settings.hnsw_space), "params": params}


def similarity(distance: float, space: str) -> float:
    """DIVER's similarity from Milvus' score: COSINE and IP are similarities already; L2 is a squared distance."""
    return -distance if space == "l2" else distance


def iterate(client: Any, collection: str, expr: str, fields: list[str], level: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every row matching ``expr`` (a query iterator: no offset limit)."""
    with unavailable_as_typed(collection, "read"):
        iterator = client.query_iterator(collection, batch_size=PAGE, filter=expr, output_fields=fields, **level)
    try:
        while True:
            with unavailable_as_typed(collection, "read"):
                page = iterator.next()
            if not page:
                return
            yield from page
    finally:
        iterator.close()
