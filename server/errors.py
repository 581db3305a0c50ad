"""Mapping DIVER's typed errors onto MCP: the caller's mistakes become tool errors the model can read and
act on; server-state failures become JSON-RPC protocol errors. Never a traceback to the client."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from diver.errors import ConfigError, DiverError, InputError, LLMError, MissingDependency, StateError

log = logging.getLogger(__name__)
T = TypeVar("T")


def to_mcp_error(exc: DiverError) -> Exception:
    """The MCP exception for a DIVER error (raise it ``from exc``)."""
    if isinstance(exc, InputError):
        return ToolError(str(exc))
    if isinstance(exc, LLMError):
        return ToolError(f"LLM unavailable: {exc}. The fast `search` tool needs no LLM.")
    if isinstance(exc, StateError | ConfigError | MissingDependency):
        log.warning("server-state error: %s", exc)
        return MCPError(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    log.warning("unclassified DIVER error: %r", exc)
    return MCPError(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine call in a worker thread, mapping DIVER errors to MCP errors."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except DiverError as exc:
        raise to_mcp_error(exc) from exc
