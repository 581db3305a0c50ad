"""Typed errors. Every failure a user can cause or meet has a class here and a clear message.

Adapters map them: the CLI prints the message and exits non-zero, the MCP server returns a tool
error (``InputError`` family) or a protocol error (``StateError`` family).
"""

from __future__ import annotations

from typing import Any


class DiverError(Exception):
    """Base class of every error DIVER raises on purpose."""


class ConfigError(DiverError):
    """The configuration is invalid or cannot be read."""


class InputError(DiverError):
    """The caller's input is invalid (bad query, k, collection name, document...). Nothing was changed."""


class CollectionNotFound(InputError):
    def __init__(self, name: str, available: list[str] | None = None) -> None:
        hint = f" Available: {', '.join(available)}." if available else " No collections exist yet."
        super().__init__(f"unknown collection {name!r}.{hint}")
        self.name = name


class DocumentNotFound(InputError):
    def __init__(self, collection: str, doc_id: str) -> None:
        super().__init__(f"no document {doc_id!r} in collection {collection!r}")


class PathNotAllowed(InputError):
    """A path is outside the configured allowed roots, or not a regular file/folder."""


class StateError(DiverError):
    """The server or an index is in a state that prevents the operation (not the caller's fault)."""


class CorruptIndex(StateError):
    """An index directory is damaged or half-written."""


class IndexLocked(StateError):
    """Another process holds the write lock on this data directory."""


class EmbedderMismatch(InputError):
    """A collection was built with another embedder (different dimension or model)."""


class MissingDependency(DiverError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the '{package}' package: pip install 'diver-retrieval[{extra}]'")
        self.package = package
        self.extra = extra


class LLMError(DiverError):
    """An LLM call failed after retries (connection refused, timeout, HTTP error...)."""


class LLMUnavailable(LLMError):
    """No LLM is configured for a stage that needs one."""


def require(module: str, extra: str, purpose: str) -> Any:  # the imported module
    """Import an optional dependency or raise ``MissingDependency`` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module.split(".")[0], extra, purpose) from exc


class EngineUnavailable(StateError):
    """The shared engine process of a data directory could not be started or reached."""


class EngineUnresponsive(EngineUnavailable):
    """The shared engine accepted the connection but sent nothing for too long (stopped or hung)."""


class UnsafePath(StateError):
    """A folder or socket DIVER relies on is owned by another user or open to other users: refused."""


class EngineSettingsMismatch(ConfigError):
    """A client's index settings differ from those of the running shared engine of its data directory."""


class VectorStoreUnavailable(StateError):
    """The vector store (e.g. a Chroma server) cannot be reached; the call failed, committed data is intact."""
