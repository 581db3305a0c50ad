"""A real, tiny cross-encoder for offline tests: the offline MiniLM weights with a fresh (seeded)
classification head, saved to a folder and loaded by path through DIVER's own loading code."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

_BUILT: dict[str, Path] = {}
_LOCK = threading.Lock()


def tiny_cross_encoder() -> Path:
    """The folder of the tiny cross-encoder (built once per test process, removed at exit)."""
    with _LOCK:
        if "path" not in _BUILT:
            import atexit

            import torch
            from sentence_transformers import CrossEncoder

            from diver.config import DEFAULT_EMBEDDING_MODEL
            from diver.index.dense.embedders import resolve_model_path

            folder = Path(tempfile.mkdtemp(prefix="diver-tiny-ce-"))
            atexit.register(shutil.rmtree, folder, True)
            torch.manual_seed(0)
            model = CrossEncoder(resolve_model_path(DEFAULT_EMBEDDING_MODEL), num_labels=1, device="cpu")
            model.save(str(folder))
            _BUILT["path"] = folder
    return _BUILT["path"]
