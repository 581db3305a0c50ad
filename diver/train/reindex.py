"""``diver reindex``: re-embed a collection's chunks with another model, keeping the catalog and BM25.

Chunk texts come from the catalog (the sources are not read again; chunk boundaries are kept). The new
vectors go into a new chroma collection whose exact name is recorded in meta.json (``reindex`` and
``stale_store_names``) before it is created; meta.json's ``store_name``/``embedder``/``dimensions`` switch
in one atomic write once every chunk has its vector. A rerun after a crash continues the same copy: chunks
already there are not embedded again. A rerun with another model drops the unfinished copy first.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diver.config import DiverSettings
from diver.errors import ConfigError, InputError
from diver.index.dense.embedders import Embedder, build_embedder
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
    from diver.index.meta import STALE_STORE_NAMES, write_meta
    from diver.index.stores.chroma import VectorStore, drop_vector_collection, store_collection_name

    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    started = time.perf_counter()
    col = engine.collection(name)
    meta = dict(col.meta)
    report = ReindexReport(name, embedder.id, int(embedder.dimensions), str(meta["embedder"]))
    if int(meta["chunk_tokens"]) > embedder.max_seq_length:
        report.notes.append(
            f"chunks hold up to {meta['chunk_tokens']} tokens but {embedder.id} reads {embedder.max_seq_length}: "
            "chunk ends are truncated (index again into a new collection to re-chunk)"
        )
    old_name = meta["store_name"]
    pending = meta.get(REINDEX_KEY) or {}
    stale = [s for s in meta.get(STALE_STORE_NAMES, []) if s != old_name]
    if pending.get("embedder") == embedder.id and pending.get("dimensions") == embedder.dimensions:
        new_name = pending["store_name"]
        report.notes.append(f"continuing the unfinished copy {new_name}")
    else:
        for leftover in stale:  # an unfinished copy for another model, or an earlier rebuild's leftovers
            drop_vector_collection(engine.client, leftover)
        stale = []
        new_name = store_collection_name(engine.store_id, name, int(time.time() * 1000))
        pending = {"store_name": new_name, "embedder": embedder.id, "dimensions": int(embedder.dimensions)}
    meta = {**meta, REINDEX_KEY: pending, STALE_STORE_NAMES: sorted(set(stale) | {new_name})}
    write_meta(col.directory, meta)  # the copy's name is known before it exists: drop and rerun find it
    col.meta = meta
    fresh = VectorStore(engine.client, new_name, engine.settings.store, create=True)
    done = set(fresh.all_ids())
    bar = _bar(progress, name)
    while True:  # until every visible chunk has a vector (a write in between adds chunks to embed)
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
    report.chunks = len(keys)
    report.reused = len(keys) - report.embedded
    switched = {k: v for k, v in meta.items() if k != REINDEX_KEY}
    switched.update(
        store_name=new_name, embedder=embedder.id, dimensions=int(embedder.dimensions),
        query_prefix=getattr(embedder, "settings", None) and embedder.settings.query_prefix or "",
        document_prefix=getattr(embedder, "settings", None) and embedder.settings.document_prefix or "",
        reindexed_from=report.previous_embedder, reindexed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )  # fmt: skip
    switched[STALE_STORE_NAMES] = [old_name]
    write_meta(col.directory, switched)  # the switch: one atomic rename
    col.meta, col.store = switched, fresh
    drop_vector_collection(engine.client, old_name)
    col.meta = {k: v for k, v in switched.items() if k != STALE_STORE_NAMES}
    write_meta(col.directory, col.meta)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _bar(progress: bool, name: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=0, desc=f"reindex {name}", unit="chunk", file=sys.stderr, disable=not sys.stderr.isatty())
