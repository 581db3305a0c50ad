"""Metadata filters (chroma's ``where`` language) and a ``source`` path-prefix scope, compiled to SQL.

The catalog stores each document's metadata as JSON; a filter becomes one SQL condition over
``json_extract`` so the set of allowed documents is computed in SQLite, before any top-k cut, for BM25 and
dense alike. Supported: ``{"field": value}`` (equality), ``{"field": {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte":
value}}``, ``{"field": {"$in"|"$nin": [values]}}``, ``{"$and": [...]}``, ``{"$or": [...]}``; several fields in
one object are ANDed (as chroma does). Values are str, int, float or bool.
"""

from __future__ import annotations

from typing import Any

from diver.errors import InputError

_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_LISTS = {"$in": "IN", "$nin": "NOT IN"}
SOURCE_KEYS = ("source", "path", "url")  # where a document's citation source is read from, in order
MAX_FILTER_DEPTH = 8
MAX_IN_VALUES = 1000


def source_of(metadata: dict[str, Any]) -> str | None:
    """The document's citable source: metadata ``source``, else ``path``, else ``url``."""
    for key in SOURCE_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _json_path(field: Any) -> str:
    if not isinstance(field, str) or not field or field.startswith("$"):
        raise InputError(f"where: field names must be non-empty strings not starting with '$', got {field!r}")
    return '$."' + field.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_value(value: Any, where: str) -> Any:
    if isinstance(value, bool | int | float | str):
        return value
    raise InputError(f"where: {where} needs a str, int, float or bool value, got {type(value).__name__}")


def _field(field: str, condition: Any, params: list[Any]) -> str:
    column = f"json_extract(metadata, '{_json_path(field).replace(chr(39), chr(39) * 2)}')"
    if not isinstance(condition, dict):
        params.append(_check_value(condition, field))
        return f"{column} = ?"
    if len(condition) != 1:
        raise InputError(f"where: {field!r} takes exactly one operator, got {sorted(condition)}")
    op, value = next(iter(condition.items()))
    if op in _COMPARE:
        params.append(_check_value(value, f"{field} {op}"))
        sql = f"{column} {_COMPARE[op]} ?"
        # chroma semantics: $ne / $nin match documents that lack the field too
        return f"({sql} OR {column} IS NULL)" if op == "$ne" else sql
    if op in _LISTS:
        if not isinstance(value, list) or not value:
            raise InputError(f"where: {field} {op} needs a non-empty list")
        if len(value) > MAX_IN_VALUES:
            raise InputError(f"where: {field} {op} has {len(value)} values; the limit is {MAX_IN_VALUES}")
        params.extend(_check_value(v, f"{field} {op}") for v in value)
        sql = f"{column} {_LISTS[op]} ({','.join('?' * len(value))})"
        return f"({sql} OR {column} IS NULL)" if op == "$nin" else sql
    raise InputError(
        f"where: unknown operator {op!r} for {field!r}; use one of {sorted([*_COMPARE, *_LISTS])}"
    )


def _compile(where: Any, params: list[Any], depth: int) -> str:
    if depth > MAX_FILTER_DEPTH:
        raise InputError(f"where: nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(where, dict) or not where:
        raise InputError(f"where must be a non-empty object, got {where!r}"[:200])
    parts = []
    for key, value in where.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InputError(f"where: {key} needs a non-empty list of conditions")
            inner = [_compile(item, params, depth + 1) for item in value]
            parts.append("(" + (" AND " if key == "$and" else " OR ").join(inner) + ")")
        else:
            parts.append(_field(key, value, params))
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def compile_filter(where: dict[str, Any] | None, source: str | None) -> tuple[str, list[Any]] | None:
    """SQL condition over the ``documents`` table (column ``metadata``) and its parameters; None: no filter."""
    params: list[Any] = []
    parts = []
    if where is not None:
        parts.append(_compile(where, params, 0))
    if source is not None:
        if not isinstance(source, str) or not source:
            raise InputError("source must be a non-empty path prefix")
        columns = [f"json_extract(metadata, '$.\"{key}\"')" for key in SOURCE_KEYS]
        parts.append(f"substr(coalesce({', '.join(columns)}), 1, ?) = ?")
        params.extend([len(source), source])
    if not parts:
        return None
    return " AND ".join(parts), params
