"""The public ``Engine`` (``from diver import Engine``): ``diver.index.engine.Engine`` that, when the data
directory is held by an idle shared engine process (``diver.service``), asks it to hand the directory over.

The index layer's own ``Engine`` knows nothing of the service process; this entry point (above both) joins
them, as ``diver.service.local_engine`` does.
"""

from __future__ import annotations

from typing import Any

from diver.config import DiverSettings
from diver.index.engine import Engine as IndexEngine
from diver.index.engine import LockContention
from diver.service.spawn import take_over_idle_engine


class Engine(IndexEngine):
    """An in-process engine over a data directory (see ``diver.index.engine.Engine``); an idle shared engine
    process holding the directory hands it over, a busy one answers ``IndexLocked``."""

    def __init__(
        self,
        settings: DiverSettings | None = None,
        embedder: Any = None,
        on_locked: LockContention | None = take_over_idle_engine,
    ) -> None:
        super().__init__(settings, embedder=embedder, on_locked=on_locked)


__all__ = ["Engine"]
