"""Training pairs: ``{query, positive_id | positive_text, negative_ids?}`` per jsonl line, validated."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from diver.errors import InputError
from diver.text.jsonl import read_jsonl

_FIELDS = {"query", "positive_id", "positive_text", "negative_ids", "id", "theorem"}


@dataclass
class TrainingPair:
    """One query with its positive document (an id in a collection, or inline text) and optional negatives."""

    query: str
    positive_id: str | None = None
    positive_text: str | None = None
    negative_ids: list[str] = field(default_factory=list)
    id: str | None = None  # optional: the pair's own id (dev/test evaluation keys)
    theorem: str | None = None  # optional grouping key (splits disjoint by it)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


def parse_pair(row: Any, where: str = "pair") -> TrainingPair:
    """A validated pair from a decoded JSON object; ``InputError`` names the problem and ``where``."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    unknown = set(row) - _FIELDS
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"{where}: 'query' must be a non-empty string")
    pos_id, pos_text = row.get("positive_id"), row.get("positive_text")
    if (pos_id is None) == (pos_text is None):
        raise InputError(f"{where}: give exactly one of 'positive_id' or 'positive_text'")
    for name, value in (("positive_id", pos_id), ("positive_text", pos_text)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InputError(f"{where}: {name!r} must be a non-empty string")
    negatives = row.get("negative_ids", [])
    if not isinstance(negatives, list) or not all(isinstance(n, str) and n for n in negatives):
        raise InputError(f"{where}: 'negative_ids' must be a list of non-empty strings")
    if pos_id is not None and pos_id in negatives:
        raise InputError(f"{where}: the positive {pos_id!r} is also listed among 'negative_ids'")
    for name in ("id", "theorem"):
        if row.get(name) is not None and not isinstance(row.get(name), str):
            raise InputError(f"{where}: {name!r} must be a string")
    return TrainingPair(
        query=query.strip(),
        positive_id=pos_id,
        positive_text=pos_text,
        negative_ids=list(dict.fromkeys(negatives)),
        id=row.get("id"),
        theorem=row.get("theorem"),
    )


def load_pairs(path: Path) -> list[TrainingPair]:
    """Every pair of a jsonl file (blank lines skipped); an error names the file and line."""
    if not path.is_file():
        raise InputError(f"training pairs file not found: {path}")
    pairs: list[TrainingPair] = []
    for number, row in read_jsonl(path, invalid="not valid JSON"):
        pairs.append(parse_pair(row, f"{path}:{number}"))
    if not pairs:
        raise InputError(f"{path} holds no training pairs")
    return pairs


def write_pairs(path: Path, pairs: Iterable[TrainingPair]) -> int:
    """Write pairs as jsonl (atomically: a temporary file renamed into place). Returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def pairs_hash(pairs: Sequence[TrainingPair]) -> str:
    """sha256 of the pairs' canonical JSON: the manifest's data hash (same pairs, same hash)."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps(pair.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
