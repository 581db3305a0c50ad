"""Dense vectors in chromadb: embedded ``PersistentClient`` by default, ``HttpClient`` for a Chroma server.

Collections are created with our own embeddings (``embedding_function=None``: chromadb never downloads
its ONNX model) and explicit HNSW settings (chromadb's defaults give poor recall).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from diver.config import StoreSettings
from diver.errors import ConfigError, StateError

log = logging.getLogger(__name__)
CHROMA_PAGE = 5000  # chromadb refuses very large single add/get/delete calls


def _chroma() -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb

    return chromadb


def open_client(settings: StoreSettings, data_dir: Path) -> Any:
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


class VectorStore:
    """One chroma collection of chunk vectors, keyed by chunk id."""

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

    def count(self) -> int:
        return int(self._collection.count())

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        for start in range(0, len(ids), CHROMA_PAGE):
            part = slice(start, start + CHROMA_PAGE)
            self._collection.upsert(
                ids=list(ids[part]), embeddings=np.asarray(vectors[part], dtype=np.float32)
            )

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), CHROMA_PAGE):
            self._collection.delete(ids=list(ids[start : start + CHROMA_PAGE]))

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id (ids the store does not hold are absent)."""
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ids), CHROMA_PAGE):
            try:
                got = self._collection.get(ids=list(ids[start : start + CHROMA_PAGE]), include=["embeddings"])
            except Exception as exc:  # noqa: BLE001 - chromadb raises untyped internal errors
                raise StateError(f"vector store {self.name!r} cannot read vectors: {exc}") from exc
            for key, vector in zip(got["ids"], got["embeddings"], strict=True):
                out[key] = np.asarray(vector, dtype=np.float32)
        return out

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            page = self._collection.get(include=[], limit=CHROMA_PAGE, offset=offset)["ids"]
            ids.extend(page)
            if len(page) < CHROMA_PAGE:
                return ids
            offset += len(page)

    def query(self, vectors: np.ndarray, n: int) -> list[list[tuple[str, float]]]:
        """Nearest chunk ids per query vector, with similarity (1 - cosine distance, or -l2, or ip)."""
        total = self.count()
        if total == 0 or n <= 0:
            return [[] for _ in range(len(vectors))]
        result = self._collection.query(
            query_embeddings=np.asarray(vectors, dtype=np.float32),
            n_results=min(n, total),
            include=["distances"],
        )
        space = self.settings.hnsw_space
        out = []
        for ids, distances in zip(result["ids"], result["distances"], strict=True):
            if space == "cosine":
                sims = [1.0 - float(d) for d in distances]
            elif space == "ip":
                sims = [1.0 - float(d) for d in distances]
            else:
                sims = [-float(d) for d in distances]
            out.append(list(zip(ids, sims, strict=True)))
        return out


def vector_collection_names(client: Any) -> list[str]:
    return [c if isinstance(c, str) else c.name for c in client.list_collections()]


def drop_vector_collection(client: Any, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception as exc:  # noqa: BLE001 - chromadb raises untyped NotFound errors
        if "does not exist" not in str(exc).lower() and "not found" not in str(exc).lower():
            raise StateError(f"cannot drop vector collection {name!r}: {exc}") from exc
