"""DIVER's MCP server: the engine and the deep-search graph as tools for LLM agents (``diver serve``)."""

from __future__ import annotations

from typing import Any

__all__ = ["build_server", "register_tools"]


def __getattr__(name: str) -> Any:  # PEP 562: importing the package stays cheap (no mcp, no torch)
    if name in __all__:
        from diver.server import app

        return getattr(app, name)
    raise AttributeError(name)
