"""Wiring of the CPU backends (``backends.py``) into the sentence-transformers embedder."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diver.config import EmbeddingSettings
from diver.errors import ConfigError
from diver.index.dense import backends
from diver.index.dense.fast_tokenize import numpy_batch_tokenizer

log = logging.getLogger(__name__)
Encode = Callable[[list[str]], np.ndarray]


def backend_fingerprint(choice: backends.BackendChoice, settings: EmbeddingSettings) -> str:
    """Cache-key suffix: vectors of another runtime/precision are not mixed with torch's in the disk cache."""
    if choice.picked == "torch":
        return ""
    quantize = f":{settings.quantize}" if choice.picked == "onnx" and settings.quantize != "none" else ""
    return f":{choice.picked}:{choice.precision}{quantize}"


def load_backend(
    embedder: Any, settings: EmbeddingSettings, cache_dir: Path | None
) -> tuple[Encode | None, backends.BackendChoice]:
    """The fast encode function per ``settings.backend`` (None = the torch path) and the recorded choice."""
    if settings.backend == "torch":
        return None, backends.BackendChoice(requested="torch")
    if embedder.device != "cpu":
        if settings.backend != "auto":
            raise ConfigError(
                f"embedding.backend={settings.backend!r} runs on the CPU only; on {embedder.device} the torch "
                "path is used (set embedding.backend='auto' or 'torch')"
            )
        return None, backends.BackendChoice(requested="auto", reason=f"on {embedder.device} the torch path runs")
    tokenizer = numpy_batch_tokenizer(embedder.model, embedder.max_seq_length)
    if tokenizer is None:
        if settings.backend != "auto":
            raise ConfigError(f"embedding.backend={settings.backend!r} needs a fast (Rust) tokenizer")
        return None, backends.BackendChoice(requested="auto", reason="no fast tokenizer")
    threads = backends.torch_threads()
    root = cache_dir or backends.default_export_root()
    state: dict[str, Path] = {}

    def export() -> Path:
        if "path" not in state:
            key = backends.export_key(embedder.model, settings, embedder.max_seq_length)
            state["dir"] = backends.export_dir(root, embedder.id, key)
            state["path"] = backends.export_onnx(embedder.model, state["dir"])
        return state["path"]

    def load(name: str) -> Encode:
        if not backends.installed(name):
            raise ConfigError(
                f"embedding.backend={name!r} needs the 'cpu-fast' extra (pip install 'diver-retrieval[cpu-fast]')"
            )
        factory = backends.RUNNERS[name]
        try:
            runner = factory(export(), threads, settings)
        except ConfigError:
            raise
        except (RuntimeError, OSError, ValueError) as exc:  # the runtime refused the graph or the settings
            raise backends.ExportError(f"backend {name} cannot run the export: {exc}") from exc
        precision = str(getattr(runner, "precision", "float32"))
        return backends.BackendEncoder(runner, tokenizer, settings.batch_size, precision)

    context = backends.choice_context(settings)
    if settings.backend == "auto":
        if not any(backends.installed(name) for name in backends.FAST_BACKENDS):
            trials: dict[str, dict[str, float | str]] = {n: {"error": "not installed"} for n in backends.FAST_BACKENDS}
            reason = "no ONNX Runtime / OpenVINO here (extra 'cpu-fast')"
            return None, backends.BackendChoice(requested="auto", reason=reason, trials=trials)
        try:
            export()
        except backends.ExportError as exc:
            return None, backends.BackendChoice(requested="auto", reason=str(exc))
        earlier = backends.recorded_choice(state["dir"], context)
        if earlier is not None:  # verified on this CPU with these runtimes and settings before
            log.info("embedding backend: %s (recorded in %s)", earlier.summary(), state["dir"])
            return (None if earlier.picked == "torch" else load(earlier.picked)), earlier
    choice, encode = backends.choose_backend(settings, embedder.encode_torch, load)
    if "dir" in state and settings.backend == "auto":
        backends.save_choice(state["dir"], choice, context)
    log.info("embedding backend: %s", choice.summary())
    return encode, choice
