"""The document catalog of one collection (SQLite, WAL): the source of truth for what is visible.

A document is visible exactly when its row and its chunk rows are committed here. Dense vectors are
written to the vector store *before* that commit, under chunk ids logged in ``pending`` first, so a crash at any
point leaves either the old state or the new one; stray vectors are reconciled from ``pending`` and
``orphans`` on the next write. The BM25 index is derived from this table and stamped with ``generation``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diver.errors import CorruptIndex
from diver.text.documents import Chunk, Document

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL,
  metadata TEXT NOT NULL, hash TEXT NOT NULL, n_chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  key TEXT PRIMARY KEY, doc_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE TABLE IF NOT EXISTS pending (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS orphans (key TEXT PRIMARY KEY);
"""


def _select_in(
    conn: sqlite3.Connection, sql: str, values: Sequence[str], page: int = 500
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` whose ``{marks}`` is an IN-list of ``values``, queried a page at a time."""
    for start in range(0, len(values), page):
        part = list(values[start : start + page])
        yield from conn.execute(sql.format(marks=",".join("?" * len(part))), part)


def chunk_key(doc_hash: str, index: int) -> str:
    return f"{doc_hash}-{index}"


@dataclass(frozen=True)
class PreparedDocument:
    document: Document
    hash: str  # unique per (id, content): chunk keys derive from it
    chunks: list[Chunk]

    @property
    def keys(self) -> list[str]:
        return [chunk_key(self.hash, c.index) for c in self.chunks]



def snapshot_generation(db: sqlite3.Connection) -> int:
    """The catalog generation seen by ``db`` (a snapshot's connection): bumped by every visible change."""
    row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(row[0]) if row else 0

class Catalog:
    def __init__(self, path: Path, create: bool) -> None:
        if not create and not path.exists():
            raise CorruptIndex(f"collection catalog {path} is missing")
        self.path = path
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        try:
            self._conn = self._connect()
            self._conn.execute("PRAGMA journal_mode=WAL")
            integrity = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if integrity != "ok":
                raise CorruptIndex(f"collection catalog {path} is damaged: {integrity}")
            self._conn.executescript(_SCHEMA)
            version = self.get_meta("schema")
            if version is None:
                self.set_meta("schema", str(SCHEMA_VERSION))
                self.set_meta("generation", "0")
            elif version != str(SCHEMA_VERSION):
                raise CorruptIndex(
                    f"collection catalog {path} has schema {version}, expected {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as exc:
            raise CorruptIndex(f"collection catalog {path} is not a readable SQLite database: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        """One read connection per thread: readers never wait for each other (WAL)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._readers.append(conn)
        return conn

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        return snapshot_generation(self._reader())

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read view: one SQLite read transaction on this thread's connection."""
        conn = self._reader()
        if conn.in_transaction:  # nested: reuse the outer snapshot
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- reads ------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        with self.snapshot() as db:
            docs = db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        return dict(_select_in(self._reader(), "SELECT id, hash FROM documents WHERE id IN ({marks})", ids))

    def get(self, doc_id: str) -> Document | None:
        row = (
            self._reader()
            .execute("SELECT id, text, metadata FROM documents WHERE id = ?", (doc_id,))
            .fetchone()
        )
        return Document(id=row[0], text=row[1], metadata=json.loads(row[2])) if row else None

    def resolve(self, db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Chunk key -> (doc id, chunk index) for the committed keys among ``keys``."""
        rows = _select_in(db, "SELECT key, doc_id, idx FROM chunks WHERE key IN ({marks})", keys)
        return {k: (d, i) for k, d, i in rows}

    def documents(self, db: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        rows = _select_in(db, "SELECT id, text, metadata FROM documents WHERE id IN ({marks})", ids)
        return {i: (t, json.loads(m)) for i, t, m in rows}

    def iter_chunks(self, db: sqlite3.Connection, batch: int = 2000) -> Iterator[list[tuple[str, int, str]]]:
        """(doc id, chunk index, chunk text) in document order, chunks of a document contiguous."""
        cursor = db.execute(
            'SELECT d.id, c.idx, substr(d.text, c.start + 1, c."end" - c.start) FROM documents d '
            "JOIN chunks c ON c.doc_id = d.id ORDER BY d.seq, c.idx"
        )
        while rows := cursor.fetchmany(batch):
            yield rows

    def chunk_spans(
        self, db: sqlite3.Connection, pairs: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        wanted = set(pairs)
        sql = 'SELECT doc_id, idx, start, "end" FROM chunks WHERE doc_id IN ({marks})'
        rows = _select_in(db, sql, sorted({doc_id for doc_id, _ in wanted}))
        return {(d, i): (int(a), int(b)) for d, i, a, b in rows if (d, i) in wanted}

    def chunk_texts(self, keys: Sequence[str]) -> dict[str, str]:
        sql = (
            'SELECT c.key, substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c '
            "JOIN documents d ON d.id = c.doc_id WHERE c.key IN ({marks})"
        )
        return dict(_select_in(self._reader(), sql, keys))

    def chunk_text(self, doc_id: str, index: int) -> str:
        row = (
            self._reader()
            .execute(
                'SELECT substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c JOIN documents d ON d.id = c.doc_id '
                "WHERE c.doc_id = ? AND c.idx = ?",
                (doc_id, index),
            )
            .fetchone()
        )
        return row[0] if row else ""

    def allowed(self, db: sqlite3.Connection, condition: tuple[str, list[Any]]) -> tuple[set[str], int]:
        """Ids of the documents matching a compiled filter (``diver.index.filters``) and their number of chunks."""
        sql, params = condition
        rows = db.execute(f"SELECT d.id, d.n_chunks FROM documents d WHERE {sql}", params).fetchall()
        return {doc_id for doc_id, _ in rows}, sum(int(n) for _, n in rows)

    def allowed_keys(self, db: sqlite3.Connection, condition: tuple[str, list[Any]]) -> list[str]:
        """Chunk keys of the documents matching a compiled filter."""
        sql, params = condition
        return [
            row[0]
            for row in db.execute(
                f"SELECT c.key FROM documents d JOIN chunks c ON c.doc_id = d.id WHERE {sql}", params
            )
        ]

    def chunk_rows(self, doc_id: str, first: int, last: int) -> list[tuple[int, int, int, str]]:
        """(index, start, end, text) of the chunks ``first..last`` (inclusive) of a document."""
        sql = (
            'SELECT c.idx, c.start, c."end", substr(d.text, c.start + 1, c."end" - c.start) FROM chunks c '
            "JOIN documents d ON d.id = c.doc_id WHERE c.doc_id = ? AND c.idx BETWEEN ? AND ? ORDER BY c.idx"
        )
        return [(int(i), int(a), int(b), t) for i, a, b, t in self._reader().execute(sql, (doc_id, first, last))]

    def chunk_count(self, doc_id: str) -> int | None:
        row = self._reader().execute("SELECT n_chunks FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return int(row[0]) if row else None

    def all_keys(self) -> set[str]:
        return {row[0] for row in self._reader().execute("SELECT key FROM chunks")}

    def folder_documents(self, root: str) -> dict[str, tuple[str, str | None]]:
        """Id -> (hash, metadata ``path``) of the documents read from the folder ``root`` (metadata ``root``)."""
        sql = (
            "SELECT id, hash, json_extract(metadata, '$.path') FROM documents "
            "WHERE json_extract(metadata, '$.root') = ?"
        )
        return {i: (h, p if isinstance(p, str) else None) for i, h, p in self._reader().execute(sql, (root,))}

    def chunk_keys_by_span(self, doc_id: str) -> tuple[str | None, dict[tuple[int, int], str]]:
        """A document's text (None when absent) and its chunk keys by (start, end) span."""
        with self.snapshot() as db:
            row = db.execute("SELECT text FROM documents WHERE id = ?", (doc_id,)).fetchone()
            rows = db.execute('SELECT key, start, "end" FROM chunks WHERE doc_id = ?', (doc_id,)).fetchall()
        return (row[0] if row else None), {(int(a), int(b)): k for k, a, b in rows}

    # -- writes -----------------------------------------------------------------------------------
    def log_pending(self, keys: Sequence[str]) -> None:
        with self._write() as db:
            db.executemany("INSERT OR IGNORE INTO pending (key) VALUES (?)", [(k,) for k in keys])

    def commit(self, prepared: Sequence[PreparedDocument], remove: Sequence[str] = ()) -> tuple[int, int]:
        """Make a batch visible atomically, deleting the documents ``remove`` in the same transaction (a
        move: the new id appears as the old one goes). Returns (added, replaced)."""
        added = replaced = 0
        with self._write() as db:
            self._delete_rows(db, [doc_id for doc_id in remove if doc_id not in {p.document.id for p in prepared}])
            for item in prepared:
                doc = item.document
                old = db.execute("SELECT hash FROM documents WHERE id = ?", (doc.id,)).fetchone()
                if old:
                    replaced += 1
                    db.execute(
                        "INSERT OR IGNORE INTO orphans (key) SELECT key FROM chunks WHERE doc_id = ?",
                        (doc.id,),
                    )
                    db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc.id,))
                    db.execute("DELETE FROM documents WHERE id = ?", (doc.id,))
                else:
                    added += 1
                db.execute(
                    "INSERT INTO documents (id, text, metadata, hash, n_chunks) VALUES (?, ?, ?, ?, ?)",
                    (
                        doc.id,
                        doc.text,
                        json.dumps(doc.metadata, ensure_ascii=False),
                        item.hash,
                        len(item.chunks),
                    ),
                )
                db.executemany(
                    'INSERT INTO chunks (key, doc_id, idx, start, "end") VALUES (?, ?, ?, ?, ?)',
                    [
                        (k, doc.id, c.index, c.start, c.end)
                        for k, c in zip(item.keys, item.chunks, strict=True)
                    ],
                )
                db.executemany("DELETE FROM orphans WHERE key = ?", [(k,) for k in item.keys])
            db.executemany("DELETE FROM pending WHERE key = ?", [(k,) for p in prepared for k in p.keys])
            self._bump(db)
        return added, replaced

    def delete(self, ids: Sequence[str]) -> int:
        with self._write() as db:
            deleted = self._delete_rows(db, ids)
            if deleted:
                self._bump(db)
        return deleted

    def _delete_rows(self, db: sqlite3.Connection, ids: Sequence[str]) -> int:
        deleted = 0
        for doc_id in ids:
            db.execute("INSERT OR IGNORE INTO orphans (key) SELECT key FROM chunks WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            deleted += db.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
        return deleted

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def stray_keys(self) -> list[str]:
        """Vector ids that may exist in the store but are not visible: crashed batches and replaced chunks."""
        with self.snapshot() as db:
            orphans = [r[0] for r in db.execute("SELECT key FROM orphans")]
            pending = [
                r[0] for r in db.execute("SELECT key FROM pending WHERE key NOT IN (SELECT key FROM chunks)")
            ]
        return orphans + pending

    def forget_strays(self, keys: Sequence[str]) -> None:
        with self._write() as db:
            db.executemany("DELETE FROM orphans WHERE key = ?", [(k,) for k in keys])
            db.executemany("DELETE FROM pending WHERE key = ?", [(k,) for k in keys])

    def close(self) -> None:
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._conn.close()
