"""Kept for the earlier documented import ``from diver.engine import Engine``; the engine lives in
``diver.index.engine``."""

from diver.index.engine import Engine

__all__ = ["Engine"]
