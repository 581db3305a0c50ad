"""One reader of JSON-lines files: (line number, value) pairs, blank lines skipped.

A bad line raises ``InputError("<path>:<line>: invalid JSON (<reason>)")`` (``invalid`` is the caller's
word for it where its error text differs); a line over ``max_line_bytes`` raises before it is parsed.
Gzipped files (``.gz``) are read transparently.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from diver.errors import InputError


def read_jsonl(
    path: Path, *, max_line_bytes: int | None = None, invalid: str = "invalid JSON"
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank line of ``path`` (1-based numbers)."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if max_line_bytes is not None and len(line.encode("utf-8")) > max_line_bytes:
                raise InputError(f"{path}:{number}: line is over the limit of {max_line_bytes} bytes")
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: {invalid} ({exc.msg})") from exc
