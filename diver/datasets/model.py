"""The benchmark model shared by every loader, and where the vendored data lives."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diver.errors import ConfigError, InputError
from diver.text.documents import Document

DATA_ENV = "DIVER_BENCHMARK_DATA"
"""Environment variable naming the folder that holds ``bright/`` and ``theoremqa/`` (overrides the default)."""

NOT_COMPARABLE = "NOT comparable to published BRIGHT numbers"


def find_data_root(override: Path | str | None = None) -> Path:
    """The folder holding ``bright/`` and ``theoremqa/``: the override, then $DIVER_BENCHMARK_DATA,
    then ``<repo>/data`` of this checkout, then ``./data``."""
    candidates: list[tuple[str, Path]] = []
    if override is not None:
        candidates.append(("argument", Path(override)))
    elif os.environ.get(DATA_ENV):
        candidates.append((DATA_ENV, Path(os.environ[DATA_ENV])))
    else:
        candidates.append(("repository checkout", Path(__file__).resolve().parents[2] / "data"))
        candidates.append(("working directory", Path.cwd() / "data"))
    for _, path in candidates:
        path = path.expanduser()
        if (path / "bright").is_dir() or (path / "theoremqa").is_dir():
            return path
    tried = ", ".join(f"{p} ({how})" for how, p in candidates)
    raise ConfigError(
        f"benchmark data folder not found (tried {tried}); set {DATA_ENV} to the folder "
        "that holds bright/ and theoremqa/"
    )


def parse_id_list(value: Any) -> list[str]:
    """A BRIGHT list field as a list of ids: JSON arrays, or their string form; ``["N/A"]`` means empty."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "N/A"):
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as exc:
                raise InputError(f"cannot parse id list {text[:80]!r}") from exc
        if isinstance(value, str):
            value = [value]
    if not isinstance(value, list | tuple):
        value = list(value)  # numpy arrays and pyarrow lists from parquet
    return [str(v) for v in value if str(v) != "N/A"]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Corpus:
    """A re-iterable source of documents (built lazily: BRIGHT corpora are large)."""

    def __init__(
        self,
        factory: Callable[[], Iterable[Document]],
        size: int | None = None,
        fingerprint: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._factory = factory
        self.size = size
        self._fingerprint = fingerprint

    def fingerprint(self) -> dict[str, str]:
        """Where the documents came from -> a hash (valid once the corpus has been read)."""
        return self._fingerprint() if self._fingerprint is not None else {}

    @classmethod
    def of(cls, docs: list[Document], fingerprint: dict[str, str] | None = None) -> Corpus:
        return cls(lambda: docs, len(docs), (lambda: dict(fingerprint)) if fingerprint else None)

    def __iter__(self) -> Iterator[Document]:
        return iter(self._factory())


@dataclass
class Benchmark:
    """One domain of one benchmark: queries, corpus, binary qrels and per-query excluded ids."""

    name: str
    domain: str
    queries: dict[str, str]
    corpus: Corpus
    qrels: dict[str, dict[str, int]]
    excluded: dict[str, set[str]] = field(default_factory=dict)
    comparable_to_bright: bool = True
    sources: dict[str, str] = field(default_factory=dict)
    """Where the data came from: file path or dataset address -> sha256 or fingerprint."""
    notes: list[str] = field(default_factory=list)

    @property
    def queries_without_relevant(self) -> list[str]:
        return [q for q in self.queries if not self.qrels.get(q)]

    def limited(self, n: int | None) -> Benchmark:
        """The first ``n`` queries (file order) with their qrels and exclusions."""
        if n is None or n >= len(self.queries):
            return self
        keep = list(self.queries)[:n]
        return Benchmark(
            name=self.name,
            domain=self.domain,
            queries={q: self.queries[q] for q in keep},
            corpus=self.corpus,
            qrels={q: self.qrels.get(q, {}) for q in keep},
            excluded={q: self.excluded.get(q, set()) for q in keep},
            comparable_to_bright=self.comparable_to_bright,
            sources=self.sources,
            notes=[*self.notes, f"limited to the first {n} of {len(self.queries)} queries"],
        )

    def with_queries(self, rewrites: dict[str, str], origin: str) -> Benchmark:
        """Replace query texts by precomputed rewrites; every query must have one."""
        missing = [q for q in self.queries if q not in rewrites]
        if missing:
            raise InputError(
                f"{origin}: no rewrite for {len(missing)} of {len(self.queries)} {self.domain} "
                f"queries (e.g. {missing[:3]})"
            )
        return Benchmark(
            name=self.name,
            domain=self.domain,
            queries={q: rewrites[q] for q in self.queries},
            corpus=self.corpus,
            qrels=self.qrels,
            excluded=self.excluded,
            comparable_to_bright=self.comparable_to_bright,
            sources=self.sources,
            notes=[*self.notes, f"query texts replaced by rewrites from {origin}"],
        )


@dataclass
class Labels:
    """Queries, binary qrels, excluded ids and notes read from query rows (``id``, ``query``, ...)."""

    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: dict[str, set[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def label_rows(
    rows: Iterable[Mapping[str, Any]],
    relevant: Callable[[Mapping[str, Any]], Iterable[str]],
    note: Callable[[str, set[str], set[str]], str | None],
) -> Labels:
    """The one relevance-label loop: per row its query text, ``relevant(row)`` ids (label 1) and its
    ``excluded_ids``; ``note(qid, relevant_ids, excluded_ids)`` may add a line to ``notes``."""
    labels = Labels()
    for row in rows:
        qid = str(row["id"])
        labels.queries[qid] = str(row["query"])  # never reasoning / gold_answer: they leak the labels
        labels.qrels[qid] = dict.fromkeys(relevant(row), 1)
        labels.excluded[qid] = set(parse_id_list(row.get("excluded_ids")))
        line = note(qid, set(labels.qrels[qid]), labels.excluded[qid])
        if line:
            labels.notes.append(line)
    return labels
