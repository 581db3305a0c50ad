"""What a collection needs from the engine that opened it, and what a store switch needs from a collection.

Protocols, so that ``collection``, ``switch`` and ``dense.rebuild`` depend on these shapes and not on
the modules above them (``Engine`` and ``Collection`` satisfy them structurally).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from diver.config import DiverSettings
from diver.index.stores.base import StoreBackend, VectorStore


class CollectionHost(Protocol):
    """The engine side of a collection: settings, the data dir's store namespace, embedder and backend."""

    settings: DiverSettings
    store_id: str

    @property
    def embedder(self) -> Any:  # diver.index.dense.embedders.Embedder (dense sits above this module)
        ...

    @property
    def backend(self) -> StoreBackend: ...


class Switchable(Protocol):
    """A collection whose vectors can move to another named store (``diver.index.switch``)."""

    name: str
    directory: Path
    meta: dict[str, Any]
    store: VectorStore
    engine: CollectionHost
