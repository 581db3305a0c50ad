"""Helpers importable from tests (conftest.py is not a module to import from)."""

from __future__ import annotations

from pathlib import Path


def make_settings(tmp_path: Path, **overrides):
    from diver.config import load_settings

    embedding = overrides.pop("embedding", {"provider": "hashing"})
    return load_settings(data_dir=tmp_path / "diver-data", embedding=embedding, **overrides)
