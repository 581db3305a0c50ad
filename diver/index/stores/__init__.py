"""Vector-store backends behind one interface (``base.StoreBackend`` / ``base.VectorStore``).

``store.backend`` picks one from ``BACKENDS``; its module is imported only when it is opened, so a
backend's client library is needed only by those who use it. To add one: a module here with a
``StoreBackend`` subclass (constructed as ``Backend(store_settings, data_dir)``), a line in ``BACKENDS``,
its name in ``diver.config.index.StoreBackendName``, and the store contract tests
(tests/test_store_contract.py) parametrised over it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from diver.config import StoreSettings
from diver.errors import ConfigError
from diver.index.stores.base import Space, StoreBackend, VectorStore, data_dir_store_id


@dataclass(frozen=True)
class BackendEntry:
    target: str  # "module:Class"
    packages: tuple[str, ...]  # its client libraries (eval manifests record their versions)
    loggers: tuple[str, ...]  # their noisy loggers (the MCP server quiets them)


BACKENDS: dict[str, BackendEntry] = {
    "chroma": BackendEntry("diver.index.stores.chroma:ChromaBackend", ("chromadb",), ("chromadb",)),
    "milvus": BackendEntry("diver.index.stores.milvus:MilvusBackend", ("pymilvus",), ("pymilvus", "grpc")),
}


def open_backend(settings: StoreSettings, data_dir: Path) -> StoreBackend:
    """The configured backend (``settings.backend``) for the data directory ``data_dir``."""
    entry = BACKENDS.get(settings.backend)
    if entry is None:
        raise ConfigError(f"store.backend must be one of {', '.join(sorted(BACKENDS))}; got {settings.backend!r}")
    module, _, cls = entry.target.partition(":")
    backend_class = getattr(importlib.import_module(module), cls)
    backend: StoreBackend = backend_class(settings, data_dir)
    return backend


def backend_packages() -> list[str]:
    """Every backend's client packages (for version manifests)."""
    return sorted({p for entry in BACKENDS.values() for p in entry.packages})


def backend_loggers() -> list[str]:
    return sorted({name for entry in BACKENDS.values() for name in entry.loggers})


__all__ = [
    "BACKENDS",
    "Space",
    "StoreBackend",
    "VectorStore",
    "backend_loggers",
    "backend_packages",
    "data_dir_store_id",
    "open_backend",
]
