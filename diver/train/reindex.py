"""``diver reindex``: re-embed a collection's chunks with another model, keeping the catalog and BM25.

Chunk texts come from the catalog (the sources are not read again; chunk boundaries are kept). The new
vectors go into a new vector store whose exact name is recorded in meta.json (``reindex`` and
``stale_store_names``) before it is created; meta.json's ``store_name``/``embedder``/``dimensions`` switch
in one atomic write once every chunk has its vector. A rerun after a crash continues the same copy: chunks
already there are not embedded again. A rerun with another model drops the unfinished copy first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diver.config import DiverSettings
from diver.errors import ConfigError, InputError
from diver.index.dense.embedders import Embedder, build_embedder
from diver.index.switch import finish_switch, start_copy
from diver.index.upserts import progress_bar
from diver.train.trainer import read_manifest

log = logging.getLogger(__name__)
REINDEX_KEY = "reindex"  # meta key: the unfinished copy {store_name, embedder, dimensions}


@dataclass
class ReindexReport:
    collection: str
    embedder: str
    dimensions: int
    previous_embedder: str
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def embedder_for(settings: DiverSettings, model: str, query_prefix: str | None = None,
                 document_prefix: str | None = None, max_seq_length: int | None = None) -> Embedder:  # fmt: skip
    """The sentence-transformers embedder of a model folder (prefixes and length from its DIVER manifest
    unless given). A local folder is recorded by its absolute path: set ``DIVER_EMBEDDING__MODEL`` to it."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise InputError(f"{path} is not a sentence-transformers model folder (no modules.json/config.json)")
        model = str(path.resolve())
    manifest = read_manifest(Path(model)) if path.exists() else {}
    update = {
        "provider": "sentence-transformers",
        "model": model,
        "query_prefix": query_prefix if query_prefix is not None else manifest.get("query_prefix", ""),
        "document_prefix": document_prefix if document_prefix is not None else manifest.get("document_prefix", ""),
        "max_seq_length": max_seq_length or manifest.get("max_seq_length") or settings.embedding.max_seq_length,
        "cache": False,  # a folder retrained in place keeps its path: never trust cached vectors of it
    }
    return build_embedder(settings.embedding.model_copy(update=update), None)


def reindex_collection(engine: Any, name: str, embedder: Embedder, batch: int = 256,
                       progress: bool = False) -> ReindexReport:  # fmt: skip
    """Re-embed collection ``name`` of ``engine`` with ``embedder`` and switch to it (see the module doc)."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    started = time.perf_counter()
    col = engine.collection(name)
    report = ReindexReport(name, embedder.id, int(embedder.dimensions), str(col.meta["embedder"]))
    if int(col.meta["chunk_tokens"]) > embedder.max_seq_length:
        report.notes.append(
            f"chunks hold up to {col.meta['chunk_tokens']} tokens but {embedder.id} reads {embedder.max_seq_length}: "
            "chunk ends are truncated (index again into a new collection to re-chunk)"
        )
    pending = col.meta.get(REINDEX_KEY) or {}
    resume = None
    same = pending.get("embedder") == embedder.id and pending.get("dimensions") == embedder.dimensions
    if same and pending.get("store_name"):
        resume = pending["store_name"]
        report.notes.append(f"continuing the unfinished copy {resume}")
    copy = {"embedder": embedder.id, "dimensions": int(embedder.dimensions)}
    fresh = start_copy(col, record=lambda store_name: {REINDEX_KEY: {"store_name": store_name, **copy}}, resume=resume)
    keys = _fill(col, fresh, embedder, batch, report, progress)
    report.chunks = len(keys)
    report.reused = len(keys) - report.embedded
    settings = getattr(embedder, "settings", None)
    finish_switch(
        col,
        fresh,
        update={
            "embedder": embedder.id,
            "dimensions": int(embedder.dimensions),
            "query_prefix": settings.query_prefix if settings is not None else "",
            "document_prefix": settings.document_prefix if settings is not None else "",
            "reindexed_from": report.previous_embedder,
            "reindexed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        remove=(REINDEX_KEY,),
    )
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _fill(col: Any, fresh: Any, embedder: Embedder, batch: int, report: ReindexReport, progress: bool) -> list[str]:
    """Embed every visible chunk the copy lacks, until none is missing (a write in between adds chunks to
    embed); remove keys no longer visible. Returns the visible keys."""
    done = set(fresh.all_keys())
    bar = progress_bar(0, f"reindex {col.name}", unit="chunk") if progress else None
    while True:
        keys = sorted(col.catalog.all_keys())
        missing = [k for k in keys if k not in done]
        if not missing:
            break
        if bar is not None:
            bar.total = len(keys)
            bar.n = len(keys) - len(missing)
            bar.refresh()
        for start in range(0, len(missing), batch):
            page = missing[start : start + batch]
            texts = col.catalog.chunk_texts(page)
            page = [k for k in page if k in texts]  # deleted meanwhile
            vectors = embedder.embed_documents([texts[k] for k in page])
            if vectors.shape != (len(page), embedder.dimensions):
                raise ConfigError(f"{embedder.id} returned {vectors.shape}, expected ({len(page)}, {embedder.dimensions})")
            fresh.upsert(page, vectors)
            done.update(page)
            report.embedded += len(page)
            if bar is not None:
                bar.update(len(page))
    strays = sorted(done - set(keys))
    if strays:
        fresh.delete(strays)
    if bar is not None:
        bar.close()
    return keys
