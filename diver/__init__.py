"""DIVER: agentic, reasoning-intensive retrieval. Core library (no MCP or LangGraph imports here).

The public API is importable from here (loaded lazily, so ``import diver`` stays cheap)::

    from diver import Engine, load_settings, make_document
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": "diver.engine",
    "Collection": "diver.index.collection",
    "Document": "diver.text.documents",
    "make_document": "diver.text.documents",
    "load_settings": "diver.config",
    "DiverSettings": "diver.config",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diver' has no attribute {name!r}")
