"""A collection's meta.json: embedder id, dimensions, chunking and the exact vector-store names.

meta.json is written last when a collection is created (its absence = half-created) and replaced atomically
on every switch (dense rebuild, reindex). ``STALE_STORE_NAMES`` lists vector collections to delete: a
half-built copy, or what a switch replaced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from diver.errors import CorruptIndex

META_FORMAT = 1
STALE_STORE_NAMES = "stale_store_names"  # meta key: vector collections to delete (see rebuild_dense)


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Replace meta.json atomically (write, fsync, rename)."""
    tmp = directory / "meta.json.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(meta, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / "meta.json")


def read_meta(path: Path, name: str) -> dict[str, Any]:
    """meta.json (or a renamed copy) of collection ``name``; CorruptIndex when unreadable."""
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != META_FORMAT or "dimensions" not in meta or "store_name" not in meta:
            raise ValueError("unexpected format")
        return meta
    except (OSError, ValueError) as exc:
        raise CorruptIndex(
            f"collection {name!r} has an unreadable {path.name} ({exc}); run `diver drop {name}` and index again"
        ) from exc
