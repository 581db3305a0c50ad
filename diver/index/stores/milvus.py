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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diver.config import StoreSettings
from diver.index.stores.base import Space, StoreBackend, VectorStore
from diver.index.stores.documents import DocumentStore
from diver.index.stores.milvus_client import (
    MAX_TOPK,
    PAGE,
    dense_index,
    escape_name,
    iterate,
    open_client,
    pymilvus,
    search_params,
    similarity,
    string_list,
    unavailable_as_typed,
)

log = logging.getLogger(__name__)


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

            self._documents = MilvusDocuments(lambda: self.client, self.prefix, self.settings)
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
        expr = "key in " + string_list(keys) if keys is not None else ""
        with self._guard("search"):
            result = self.client.search(
                self.milvus_name, data=np.asarray(vectors, dtype=np.float32).tolist(), anns_field="vector",
                limit=min(n, MAX_TOPK), filter=expr, search_params=search_params(self.backend.settings, n),
                **self._level(),
            )  # fmt: skip
        return [[(str(hit["key"]), similarity(float(hit["distance"]), self.space)) for hit in row] for row in result]


