"""Disk caches keyed by model and input: embeddings (float32 vectors) and LLM completions (JSON).

One SQLite file per namespace; WAL mode so concurrent readers and one writer per process are safe.
Only successful results are ever written (callers store after validating).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def stable_key(*parts: Any) -> str:
    """A 32-hex-digit digest of JSON-encoded parts (order matters)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


class _SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._conn.commit()
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                marks = ",".join("?" * len(part))
                for k, v in self._conn.execute(f"SELECT k, v FROM kv WHERE k IN ({marks})", part):  # noqa: S608
                    found[k] = v
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put_many(self, items: dict[str, bytes]) -> None:
        if not items:
            return
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", list(items.items()))
            self._conn.commit()
        self.writes += len(items)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class EmbeddingCache:
    """Vectors keyed by (model fingerprint, text)."""

    def __init__(self, cache_dir: Path, model_fingerprint: str) -> None:
        self.fingerprint = model_fingerprint
        self._store = _SqliteStore(cache_dir / "embeddings" / f"{stable_key(model_fingerprint)}.sqlite")

    def key(self, text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[int, np.ndarray]:
        keys = [self.key(t) for t in texts]
        found = self._store.get_many(keys)
        return {i: np.frombuffer(found[k], dtype=np.float32) for i, k in enumerate(keys) if k in found}

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._store.put_many(
            {
                self.key(t): np.ascontiguousarray(v, dtype=np.float32).tobytes()
                for t, v in zip(texts, vectors, strict=True)
            }
        )

    @property
    def stats(self) -> dict[str, int]:
        return {"hits": self._store.hits, "misses": self._store.misses, "writes": self._store.writes}

    def close(self) -> None:
        self._store.close()


class CompletionCache:
    """LLM completions keyed by (model, messages, sampling parameters)."""

    def __init__(self, cache_dir: Path) -> None:
        self._store = _SqliteStore(cache_dir / "llm" / "completions.sqlite")

    def get(self, key: str) -> Any | None:
        found = self._store.get_many([key])
        return json.loads(found[key]) if key in found else None

    def put(self, key: str, value: Any) -> None:
        self._store.put_many({key: json.dumps(value, ensure_ascii=False).encode("utf-8")})

    @property
    def stats(self) -> dict[str, int]:
        return {"hits": self._store.hits, "misses": self._store.misses, "writes": self._store.writes}

    def close(self) -> None:
        self._store.close()
