"""Formatting helpers shared by the benchmark report modules (report.py, report_perf.py)."""

from __future__ import annotations

from typing import Any


def get(data: Any, *path: Any, default: Any = None) -> Any:
    """``data[path[0]][path[1]]...``, or ``default`` where a key is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def fmt(value: Any, digits: int = 2) -> str:
    """A measured figure for a table: thousands separators, ``digits`` decimals, 'n/a' when missing."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def met(ok: bool | None) -> str:
    """A target's status column."""
    return "n/a" if ok is None else ("met" if ok else "**missed**")
