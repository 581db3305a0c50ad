"""DIVER collections as Milvus collections of chunk rows (``DocumentStore`` / ``DocumentRows``).

Per DIVER collection one Milvus collection ``<prefix>_c_<escaped name>`` with one row per chunk: ``key``
(primary: ``<content hash>-<chunk index>``), ``doc_id``, ``doc_hash``, ``idx``, ``n_chunks``, ``start``/
``stop`` (the chunk's span in the document), ``gen`` (the batch generation), ``text`` (the chunk), ``head``
(chunk 0: text before it) and ``gap`` (text between this chunk and the next, or after the last), so the
document is rebuilt exactly from its rows; ``metadata`` (JSON) and ``source`` (``filters.source_of``) for
filters; ``dense`` (the embedding) and ``sparse``, made by Milvus' BM25 function from ``lexical``.
``lexical`` holds the chunk's tokens as DIVER's BM25 tokenizer makes them (stopwords removed, stemmed),
so the server's analyzer only splits on spaces and the terms are DIVER's on any Milvus build.

One catalog collection ``<prefix>_catalog`` holds a row per DIVER collection: its meta (embedder,
dimensions, chunking, BM25 tokenizer, schema version, ``watermark`` = last committed generation,
``replacing`` = documents whose older rows are still to be removed). The meta row is written last on
create and deleted first on drop, so a half-made collection is never listed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from diver.config import StoreSettings
from diver.errors import CollectionNotFound, CorruptIndex, InputError, StateError, VectorStoreUnavailable
from diver.index.filters import source_of
from diver.index.stores.documents import (
    SCHEMA_VERSION,
    ChunkHit,
    DocumentRows,
    DocumentStore,
    RowDocument,
    Snapshot,
    StoredDocument,
)
from diver.index.stores.milvus_client import (
    MAX_TOPK,
    PAGE,
    dense_index,
    escape_name,
    iterate,
    pymilvus,
    search_params,
    similarity,
    string_list,
    unavailable_as_typed,
)
from diver.index.stores.milvus_expr import literal, milvus_filter
from diver.text.documents import Document

MAX_VARCHAR = 65535  # bytes: Milvus' VARCHAR limit
MAX_DOC_ID = 2048
_READ_FIELDS = ["doc_id", "idx", "n_chunks", "start", "stop", "text", "head", "gap", "metadata"]

log = logging.getLogger(__name__)


class MilvusDocuments(DocumentStore):
    def __init__(self, client: Callable[[], Any], prefix: str, settings: StoreSettings) -> None:
        self._client = client
        self.prefix = prefix
        self.settings = settings
        self.catalog = f"{prefix}_catalog"
        self._catalog_ready = False

    @property
    def client(self) -> Any:
        return self._client()

    def level(self) -> dict[str, Any]:
        return {"consistency_level": self.settings.milvus_consistency}

    def rows_name(self, name: str) -> str:
        return f"{self.prefix}_c_{escape_name(name)}"

    def _ensure_catalog(self) -> None:
        if self._catalog_ready:
            return
        module = pymilvus()
        with unavailable_as_typed(self.catalog, "open the catalog"):
            if not self.client.has_collection(self.catalog):
                schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("name", module.DataType.VARCHAR, is_primary=True, max_length=256)
                schema.add_field("meta", module.DataType.VARCHAR, max_length=MAX_VARCHAR)
                schema.add_field("unused", module.DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
                index = self.client.prepare_index_params()
                index.add_index("unused", index_type="FLAT", metric_type="L2")
                self.client.create_collection(self.catalog, schema=schema, index_params=index, consistency_level="Strong")
        self._catalog_ready = True

    def read_meta(self, name: str, level: str = "Strong") -> dict[str, Any] | None:
        self._ensure_catalog()
        with unavailable_as_typed(self.catalog, "read the catalog"):
            rows = self.client.query(self.catalog, filter=f"name == {literal(name, 'name')}", output_fields=["meta"],
                                     consistency_level=level)  # fmt: skip
        return json.loads(rows[0]["meta"]) if rows else None

    def write_meta(self, name: str, meta: dict[str, Any]) -> None:
        self._ensure_catalog()
        text = json.dumps(meta)
        if len(text.encode("utf-8")) > MAX_VARCHAR:
            raise InputError(f"collection {name!r}: too many documents replaced in one batch for the Milvus catalog row")
        with unavailable_as_typed(self.catalog, "write the catalog"):
            self.client.upsert(self.catalog, [{"name": name, "meta": text, "unused": [0.0, 0.0]}])

    def names(self) -> list[str]:
        self._ensure_catalog()
        with unavailable_as_typed(self.catalog, "list collections"):
            rows = self.client.query(self.catalog, filter="", output_fields=["name"], limit=MAX_TOPK,
                                     consistency_level="Strong")  # fmt: skip
        if len(rows) >= MAX_TOPK:  # that many collections: every one, through an iterator
            rows = list(iterate(self.client, self.catalog, "", ["name"], {"consistency_level": "Strong"}))
        return sorted(str(row["name"]) for row in rows)

    def open(self, name: str) -> MilvusRows | None:
        meta = self.read_meta(name)
        if meta is None:
            return None
        if meta.get("schema") != SCHEMA_VERSION:
            raise CorruptIndex(
                f"collection {name!r} in Milvus ({self.rows_name(name)}) has DIVER row schema "
                f"{meta.get('schema')!r}; this DIVER reads schema {SCHEMA_VERSION}. Use a DIVER release of that "
                "schema, or drop the collection and index again"
            )
        return MilvusRows(self, name, meta)

    def create(self, name: str, meta: dict[str, Any]) -> MilvusRows:
        rows_name = self.rows_name(name)
        with unavailable_as_typed(rows_name, "create"):
            self.client.drop_collection(rows_name)  # rows left by an interrupted drop or create
            schema, index = self._schema(int(meta["dimensions"]), meta["bm25"])
            self.client.create_collection(
                rows_name, schema=schema, index_params=index, consistency_level=self.settings.milvus_consistency,
                properties={"diver.schema": str(SCHEMA_VERSION)},
            )  # fmt: skip
        meta = {**meta, "schema": SCHEMA_VERSION, "rows": rows_name, "watermark": 0, "replacing": []}
        self.write_meta(name, meta)
        return MilvusRows(self, name, meta)

    def _schema(self, dim: int, bm25: dict[str, Any]) -> tuple[Any, Any]:
        module = pymilvus()
        types = module.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", types.VARCHAR, is_primary=True, max_length=128)
        schema.add_field("doc_id", types.VARCHAR, max_length=MAX_DOC_ID)
        schema.add_field("doc_hash", types.VARCHAR, max_length=64)
        for field in ("idx", "n_chunks", "start", "stop", "gen"):
            schema.add_field(field, types.INT64)
        for field in ("text", "head", "gap"):
            schema.add_field(field, types.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("lexical", types.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})  # fmt: skip
        schema.add_field("source", types.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("metadata", types.JSON)
        schema.add_field("dense", types.FLOAT_VECTOR, dim=dim)
        schema.add_field("sparse", types.SPARSE_FLOAT_VECTOR)
        schema.add_function(module.Function(name="bm25", function_type=module.FunctionType.BM25,
                                            input_field_names=["lexical"], output_field_names=["sparse"]))  # fmt: skip
        index = self.client.prepare_index_params()
        index.add_index("dense", **dense_index(self.settings))
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params={"bm25_k1": float(bm25["k1"]), "bm25_b": float(bm25["b"])})  # fmt: skip
        return schema, index

    def drop(self, name: str) -> bool:
        existed = self.read_meta(name) is not None
        with unavailable_as_typed(self.catalog, "drop"):
            self.client.delete(self.catalog, ids=[name])  # unlisted first: a crash leaves rows, never a live half
            self.client.drop_collection(self.rows_name(name))
        return existed


class MilvusRows(DocumentRows):
    def __init__(self, store: MilvusDocuments, name: str, meta: dict[str, Any]) -> None:
        self.store = store
        self.name = name
        self.meta = meta
        self.rows = str(meta["rows"])
        self.space = store.settings.hnsw_space
        self.unflushed = 0  # chunk rows this process wrote since its last flush

    @property
    def client(self) -> Any:
        return self.store.client

    def _guard(self, what: str) -> Any:
        return unavailable_as_typed(self.rows, what)

    def refresh(self, fresh: bool = True) -> dict[str, Any]:
        meta = self.store.read_meta(self.name, "Strong" if fresh else self.store.settings.milvus_consistency)
        if meta is None:
            raise CollectionNotFound(self.name, self.store.names())  # dropped by another frontend
        self.meta = meta
        return meta

    def snapshot(self, where: dict[str, Any] | None = None, source: str | None = None, fresh: bool = False) -> Snapshot:
        expr = milvus_filter(where, source)  # an InputError before any round trip
        meta = self.refresh(fresh)
        watermark = int(meta["watermark"])
        condition = f"gen <= {watermark}"
        if meta.get("replacing"):  # committed replacements whose old rows are not removed yet: hidden
            condition += f" and not (doc_id in {string_list(meta['replacing'])} and gen < {watermark})"
        condition += f" and ({expr})" if expr else ""
        return Snapshot(watermark, condition)

    def _query(self, expr: str, fields: list[str], what: str, strong: bool = False) -> list[dict[str, Any]]:
        """Rows matching ``expr``; ``strong``: at Strong consistency (a writer's reads), else the configured level."""
        level = {"consistency_level": "Strong"} if strong else self.store.level()
        with self._guard(what):
            return list(self.client.query(self.rows, filter=expr, output_fields=fields, **level))

    def hashes(self, ids: Sequence[str], snap: Snapshot) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(ids), PAGE):
            expr = f"({snap.condition}) and idx == 0 and doc_id in {string_list(ids[start : start + PAGE])}"
            for row in self._query(expr, ["doc_id", "doc_hash", "gen"], "read hashes", strong=True):
                out[str(row["doc_id"])] = str(row["doc_hash"])
        return out

    def write(self, docs: Sequence[RowDocument], vectors: np.ndarray, generation: int) -> None:
        rows = []
        matrix = np.asarray(vectors, dtype=np.float32)
        for doc in docs:
            rows.extend(_rows(doc, generation))
        for row, vector in zip(rows, matrix, strict=True):
            row["dense"] = vector.tolist()
        for start in range(0, len(rows), PAGE):
            with self._guard("write"):
                self.client.upsert(self.rows, rows[start : start + PAGE])
        self.unflushed += len(rows)

    def flush_if_due(self) -> bool:
        """Flush once ``store.milvus_flush_rows`` rows were written since the last flush (an upsert's end, never
        per batch): the server seals the rows and indexes them. Already committed and durable either way, so
        a refused flush (rate limit, server gone) is a warning, not a failed upsert."""
        threshold = self.store.settings.milvus_flush_rows
        if not threshold or self.unflushed < threshold:
            return False
        self.unflushed = 0
        try:
            with self._guard("flush"):
                self.client.flush(self.rows)
        except (StateError, VectorStoreUnavailable) as exc:
            log.warning("Milvus did not flush %s (searches scan its unsealed rows until it does): %s", self.rows, exc)
            return False
        return True

    def commit(self, generation: int, replacing: Sequence[str]) -> None:
        self.meta = {**self.meta, "watermark": generation, "replacing": sorted(set(replacing))}
        self.store.write_meta(self.name, self.meta)

    def reconcile(self) -> None:
        meta = self.refresh()
        watermark = int(meta["watermark"])
        with self._guard("reconcile"):
            self.client.delete(self.rows, filter=f"gen > {watermark}")
        replacing = list(meta.get("replacing") or [])
        for start in range(0, len(replacing), PAGE):
            part = replacing[start : start + PAGE]
            with self._guard("reconcile"):
                # the replaced documents' rows older than their newest generation
                newest: dict[str, int] = {}
                for r in self._query(f"idx == 0 and doc_id in {string_list(part)}", ["doc_id", "gen"], "reconcile",
                                     strong=True):  # fmt: skip
                    newest[str(r["doc_id"])] = max(int(r["gen"]), newest.get(str(r["doc_id"]), 0))
                for doc_id, gen in newest.items():
                    self.client.delete(self.rows, filter=f"doc_id == {literal(doc_id, 'id')} and gen < {gen}")
        if replacing:
            self.meta = {**meta, "replacing": []}
            self.store.write_meta(self.name, self.meta)

    def delete_documents(self, ids: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(ids), PAGE):
            part = string_list(ids[start : start + PAGE])
            found = self._query(f"idx == 0 and doc_id in {part}", ["doc_id"], "delete", strong=True)
            deleted += len({str(r["doc_id"]) for r in found})
            with self._guard("delete"):
                self.client.delete(self.rows, filter=f"doc_id in {part}")
        return deleted

    def counts(self, snap: Snapshot) -> tuple[int, int]:
        chunks = self._query(snap.condition, ["count(*)"], "count")[0]["count(*)"]
        docs = self._query(f"({snap.condition}) and idx == 0", ["count(*)"], "count")[0]["count(*)"]
        return int(docs), int(chunks)

    def _search(self, data: list[Any], field: str, n: int, snap: Snapshot, params: dict[str, Any]) -> list[list[ChunkHit]]:
        if not data or n <= 0:
            return [[] for _ in data]
        with self._guard("search"):
            result = self.client.search(
                self.rows, data=data, anns_field=field, limit=min(n, MAX_TOPK), filter=snap.condition,
                output_fields=["doc_id", "idx", "gen"], search_params=params, **self.store.level(),
            )  # fmt: skip
        return [[(str(h["entity"]["doc_id"]), int(h["entity"]["idx"]), float(h["distance"]), int(h["entity"]["gen"]))
                 for h in row] for row in result]  # fmt: skip

    def lexical_top(self, texts: Sequence[str], n: int, snap: Snapshot) -> list[list[ChunkHit]]:
        asked = [i for i, t in enumerate(texts) if t.strip()]
        out: list[list[ChunkHit]] = [[] for _ in texts]
        found = self._search([texts[i] for i in asked], "sparse", n, snap, {"metric_type": "BM25"})
        for i, row in zip(asked, found, strict=True):
            # BM25 scores are >= 0; milvus-lite reports them negated (as a distance), a Milvus server as is
            out[i] = [(d, c, abs(s), g) for d, c, s, g in row]
        return out

    def dense_top(self, vectors: np.ndarray, n: int, snap: Snapshot) -> list[list[ChunkHit]]:
        data = np.asarray(vectors, dtype=np.float32).tolist()
        found = self._search(data, "dense", n, snap, search_params(self.store.settings, n))
        return [[(d, c, similarity(s, self.space), g) for d, c, s, g in row] for row in found]

    def documents(self, ids: Sequence[str], snap: Snapshot) -> dict[str, StoredDocument]:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(ids), 100):
            expr = f"({snap.condition}) and doc_id in {string_list(ids[start : start + 100])}"
            with self._guard("read documents"):
                page = self.client.query(self.rows, filter=expr, output_fields=[*_READ_FIELDS, "gen"],
                                         limit=MAX_TOPK, **self.store.level())  # fmt: skip
            if len(page) >= MAX_TOPK:  # very long documents: every row, through an iterator
                page = list(iterate(self.client, self.rows, expr, [*_READ_FIELDS, "gen"], self.store.level()))
            rows.extend(page)
        by_doc: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_doc.setdefault(str(row["doc_id"]), []).append(row)
        return {doc_id: _rebuild(doc_id, group) for doc_id, group in by_doc.items()}

    def chunk_count(self, doc_id: str, snap: Snapshot) -> int | None:
        expr = f"({snap.condition}) and doc_id == {literal(doc_id, 'id')} and idx == 0"
        rows = _newest(self._query(expr, ["n_chunks", "gen"], "read a document"))
        return int(rows[0]["n_chunks"]) if rows else None

    def chunk_rows(self, doc_id: str, first: int, last: int, snap: Snapshot) -> list[tuple[int, int, int, str]]:
        expr = f"({snap.condition}) and doc_id == {literal(doc_id, 'id')} and idx >= {first} and idx <= {last}"
        rows = _newest(self._query(expr, ["idx", "start", "stop", "text", "gen"], "read chunks"))
        return sorted((int(r["idx"]), int(r["start"]), int(r["stop"]), str(r["text"])) for r in rows)


def _newest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a document's newest generation (a replaced version's rows linger until reconciled)."""
    if not rows:
        return rows
    top = max(int(r["gen"]) for r in rows)
    return [r for r in rows if int(r["gen"]) == top]


def _rebuild(doc_id: str, rows: list[dict[str, Any]]) -> StoredDocument:
    rows = sorted(_newest(rows), key=lambda r: int(r["idx"]))
    parts = [str(rows[0]["head"])]
    cursor = int(rows[0]["start"])
    spans = {}
    for row in rows:
        start, stop, text = int(row["start"]), int(row["stop"]), str(row["text"])
        parts.append(text[max(0, cursor - start) :])
        cursor = max(cursor, stop)
        parts.append(str(row["gap"]))
        cursor += len(str(row["gap"]))
        spans[int(row["idx"])] = (start, stop)
    metadata = rows[0]["metadata"] if isinstance(rows[0]["metadata"], dict) else json.loads(rows[0]["metadata"])
    return StoredDocument(Document(id=doc_id, text="".join(parts), metadata=metadata), spans)


def _rows(item: RowDocument, generation: int) -> list[dict[str, Any]]:
    doc = item.document
    if len(doc.id.encode("utf-8")) > MAX_DOC_ID:
        raise InputError(f"document id {doc.id[:60]!r}...: longer than {MAX_DOC_ID} bytes (the Milvus backend's limit)")
    chunks = item.chunks
    source = source_of(doc.metadata) or ""
    out = []
    for i, (key, chunk, lexical) in enumerate(zip(item.keys, chunks, item.lexical, strict=True)):
        following = chunks[i + 1].start if i + 1 < len(chunks) else len(doc.text)
        row = {
            "key": key, "doc_id": doc.id, "doc_hash": item.hash, "idx": chunk.index, "n_chunks": len(chunks),
            "start": chunk.start, "stop": chunk.end, "gen": generation, "text": chunk.text,
            "head": doc.text[: chunk.start] if i == 0 else "", "gap": doc.text[chunk.end : following],
            "lexical": lexical, "source": source, "metadata": doc.metadata,
        }  # fmt: skip
        for field in ("text", "head", "gap", "lexical", "source"):
            if len(str(row[field]).encode("utf-8")) > MAX_VARCHAR:
                raise InputError(f"document {doc.id!r}: chunk {chunk.index}'s {field} exceeds Milvus' {MAX_VARCHAR}-byte "
                                 "text field; use smaller chunks (chunking.max_tokens)")  # fmt: skip
        out.append(row)
    return out
