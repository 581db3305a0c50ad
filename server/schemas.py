"""The argument types shared by the MCP tools (their JSON schema: descriptions and bounds)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp_types import ToolAnnotations
from pydantic import Field

Collection = Annotated[str, Field(description="Collection name (see list_collections).")]
Query = Annotated[str, Field(description="What to look for, in natural language; may be long.")]
K = Annotated[int, Field(ge=1, le=1000, description="Number of documents to return.")]
Mode = Literal["hybrid", "bm25", "dense"]
Expansions = Annotated[
    list[str] | None,
    Field(max_length=8, description="Passages YOU wrote answering the query, naming the theorems/concepts/"
          "APIs a relevant document would contain; each counts beside the query."),
]  # fmt: skip
Where = Annotated[
    dict[str, Any] | None,
    Field(description='Metadata filter, chroma-style: {"lang": "en"}, {"year": {"$gte": 2020}}; $in $nin $ne '
          "$lt $lte $gt $and $or. Applied before the top-k cut."),
]  # fmt: skip
Source = Annotated[str | None, Field(description="Only documents whose metadata source starts with this.")]
MaxChars = Annotated[int, Field(ge=500, le=500_000, description="Budget for the whole response (characters).")]
HitChars = Annotated[int, Field(ge=50, le=100_000, description="Budget per hit's passage (characters).")]
Format = Literal["full", "compact"]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
RoundToken = Annotated[str | None, Field(description="The `round` token of your previous deep_search call.")]
