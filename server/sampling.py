"""MCP sampling as a reasoner (optional, isolated: sampling is deprecated in the 2026-07-28 spec).

Not wired yet: ``client_samples`` answers False, so deep_search falls back to retrieval only and asks the
agent for expansions."""

from __future__ import annotations

from typing import Any


def client_samples(ctx: Any) -> bool:
    return False


async def sampling_rounds(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("MCP sampling is not wired yet")
