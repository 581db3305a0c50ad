"""The ``search`` section: how a query and its LLM expansions are assembled into retriever inputs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from diver.config.base import Section

Assembly = Literal["query", "concat", "expansion_only", "separate", "balanced", "fit"]


class SearchSettings(Section):
    assembly: Assembly = Field(
        "fit",
        description="Query assembly for searches with expansions (MCP search, deep search rounds): "
        "'query' (ignore them), 'concat' (QExpand's one text), 'expansion_only', 'separate' (one run per "
        "text, fused), 'balanced' (query and joined expansions fused), 'fit' (concat when it fits the "
        "embedder window in dense mode, else balanced).",
    )
