"""What ``tools/list`` sends: every connecting agent reads it, and pays for it in context, before its first
call. ``DiverMCPServer`` lists the same tools with docstring indentation removed and without the ``title``
annotations pydantic derives from each field and model name (``"k": {"title": "K", ...}``): they repeat the
key they sit under. Validation is unchanged (it uses the tools' own argument models).
benchmarks/mcp_tool_list.py measures the answer; tests/integration/test_tool_list_budget.py bounds it."""

from __future__ import annotations

import inspect
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import Tool

_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # name -> schema
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")  # [schema, ...]
_SCHEMA_ONE = ("items", "additionalProperties", "not", "propertyNames")  # schema


def strip_titles(schema: Any) -> Any:
    """``schema`` without its ``title`` keywords (a property *named* title stays)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_titles(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip_titles(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = strip_titles(value)
        else:
            out[key] = value
    return out


def compact_tool(tool: Tool) -> Tool:
    return tool.model_copy(
        update={
            "description": inspect.cleandoc(tool.description) if tool.description else tool.description,
            "input_schema": strip_titles(tool.input_schema),
            "output_schema": strip_titles(tool.output_schema) if tool.output_schema else tool.output_schema,
        }
    )


class DiverMCPServer(MCPServer):
    """An MCPServer whose ``tools/list`` answer is compacted (``compact_tool``)."""

    async def list_tools(self) -> list[Tool]:
        return [compact_tool(tool) for tool in await super().list_tools()]
