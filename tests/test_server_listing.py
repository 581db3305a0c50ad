"""``DiverMCPServer`` lists its tools compacted (no derived ``title`` keywords, no docstring indentation)
and loses nothing else: every description, bound, default, enum and property survives."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

pytest.importorskip("mcp")
from mcp.server.mcpserver import MCPServer  # noqa: E402

from diver.server.app import build_server  # noqa: E402
from diver.server.listing import strip_titles  # noqa: E402


def _without_titles(schema: Any) -> Any:
    """Reference: drop every ``title`` keyword by walking the whole document (a property named title, under
    ``properties``, is a key of that mapping, and stays)."""
    if isinstance(schema, list):
        return [_without_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: (_without_titles(v) if k != "properties" else {n: _without_titles(s) for n, s in v.items()})
            for k, v in schema.items() if not (k == "title" and isinstance(v, str))}  # fmt: skip


async def test_listing_drops_titles_and_indentation_only(hashing_settings: Any) -> None:
    server = build_server(hashing_settings)
    compact = {t.name: t for t in await server.list_tools()}
    plain = {t.name: t for t in await MCPServer.list_tools(server)}
    assert compact.keys() == plain.keys() and len(compact) == 9
    for name, tool in plain.items():
        assert compact[name].description == inspect.cleandoc(tool.description or "")
        assert compact[name].input_schema == _without_titles(tool.input_schema)
        assert compact[name].output_schema == _without_titles(tool.output_schema)
        assert compact[name].annotations == tool.annotations
    hit = compact["search"].output_schema["$defs"]["SearchHit"]["properties"]
    assert "title" in hit and "title" not in hit["title"]  # the property stays, its derived title goes


def test_strip_titles_keeps_properties_and_values_named_title() -> None:
    schema = {"title": "X", "type": "object", "required": ["title"], "default": {"title": "kept"},
              "properties": {"title": {"title": "Title", "type": "string", "examples": [{"title": "t"}]}},
              "anyOf": [{"title": "A"}], "items": {"title": "I"}}  # fmt: skip
    assert strip_titles(schema) == {
        "type": "object", "required": ["title"], "default": {"title": "kept"},
        "properties": {"title": {"type": "string", "examples": [{"title": "t"}]}}, "anyOf": [{}], "items": {},
    }  # fmt: skip
