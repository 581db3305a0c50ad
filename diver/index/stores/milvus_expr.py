"""``where`` filters (``diver.index.filters``' language) and a ``source`` prefix as Milvus boolean expressions.

The semantics are the catalog's (chroma's): ``$ne`` / ``$nin`` also match documents that lack the field;
``$in`` is written as ``==`` alternatives (Milvus' ``in`` takes a scalar field only in some servers).
Metadata lives in the JSON field ``metadata``; a document's citable source (``filters.source_of``) in the
VARCHAR field ``source``. What cannot be expressed is an ``InputError`` naming it, never a silently
different filter.
"""

from __future__ import annotations

import json
import math
from typing import Any

from diver.errors import InputError
from diver.index.filters import MAX_FILTER_DEPTH, MAX_IN_VALUES

_COMPARE = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_LIKE_SPECIAL = ("%", "_", "\\")


def literal(value: Any, where: str) -> str:
    """A Milvus literal for a str, int, float or bool."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"where: {where}: {value!r} cannot be translated to a Milvus filter")
        return repr(value)
    if isinstance(value, str):
        if any(ord(c) < 32 for c in value):
            raise InputError(f"where: {where}: control characters cannot be translated to a Milvus filter")
        return json.dumps(value, ensure_ascii=False)
    raise InputError(f"where: {where} needs a str, int, float or bool value, got {type(value).__name__}")


def _column(field: Any) -> str:
    if not isinstance(field, str) or not field or field.startswith("$"):
        raise InputError(f"where: field names must be non-empty strings not starting with '$', got {field!r}")
    if any(c in field for c in '"\\') or any(ord(c) < 32 for c in field):
        raise InputError(f"where: the field name {field!r} cannot be translated to a Milvus filter (quote, "
                         "backslash or control character)")  # fmt: skip
    return f'metadata["{field}"]'


def _field(field: str, condition: Any) -> str:
    column = _column(field)
    if not isinstance(condition, dict):
        return f"{column} == {literal(condition, field)}"
    if len(condition) != 1:
        raise InputError(f"where: {field!r} takes exactly one operator, got {sorted(condition)}")
    op, value = next(iter(condition.items()))
    if op in _COMPARE:
        expr = f"{column} {_COMPARE[op]} {literal(value, f'{field} {op}')}"
        return f"(not exists {column} or {expr})" if op == "$ne" else expr
    if op in ("$in", "$nin"):
        if not isinstance(value, list) or not value:
            raise InputError(f"where: {field} {op} needs a non-empty list")
        if len(value) > MAX_IN_VALUES:
            raise InputError(f"where: {field} {op} has {len(value)} values; the limit is {MAX_IN_VALUES}")
        items = [literal(v, f"{field} {op}") for v in value]
        if op == "$in":
            return "(" + " or ".join(f"{column} == {v}" for v in items) + ")"
        return f"(not exists {column} or (" + " and ".join(f"{column} != {v}" for v in items) + "))"
    raise InputError(f"where: unknown operator {op!r} for {field!r}; use one of {sorted([*_COMPARE, '$in', '$nin'])}")


def _compile(where: Any, depth: int) -> str:
    if depth > MAX_FILTER_DEPTH:
        raise InputError(f"where: nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(where, dict) or not where:
        raise InputError(f"where must be a non-empty object, got {where!r}"[:200])
    parts = []
    for key, value in where.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InputError(f"where: {key} needs a non-empty list of conditions")
            inner = [_compile(item, depth + 1) for item in value]
            parts.append("(" + (" and " if key == "$and" else " or ").join(inner) + ")")
        else:
            parts.append(_field(key, value))
    return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"


def milvus_filter(where: dict[str, Any] | None, source: str | None) -> str | None:
    """The Milvus expression of a ``where`` filter and a ``source`` prefix; None: no filter."""
    parts = []
    if where is not None:
        parts.append(_compile(where, 0))
    if source is not None:
        if not isinstance(source, str) or not source:
            raise InputError("source must be a non-empty path prefix")
        if any(c in source for c in _LIKE_SPECIAL):
            raise InputError(
                f"source {source[:80]!r}: a prefix with '%', '_' or a backslash cannot be translated to a "
                "Milvus filter (LIKE wildcards); use a shorter prefix without them"
            )
        parts.append(f"source like {literal(source + '%', 'source')}")
    return " and ".join(parts) if parts else None
