"""Where a span of a document's text came from: source lines, PDF page, heading path.

A file read through ``diver.text.formats`` keeps a compact location map in its metadata under
``LOCATIONS_KEY``: anchors ``[offset, value]`` sorted by offset into the cleaned document text.

- ``lines``: at each anchor the text's line has that source line number; between anchors lines count on
  one per ``\\n`` (an anchor is written only where cleaning or parsing broke that count). Absent: lines
  count from 1 at offset 0; empty: the text is not the file's (HTML, PDF...), no line numbers.
- ``pages``: the 1-based page that starts at that offset (PDF).
- ``headings``: the heading path (``"Guide > Install"``) in force from that offset on.
- ``breaks``: offsets where a definition (code) or a section starts: the chunker prefers to cut there.

A document with a ``path`` but no map (a plain file whose lines map one to one) counts lines from 1.
Documents from .jsonl or ``index_documents`` carry no location at all. The map is internal: hits and
``get_document`` show ``lines``/``page``/``heading`` instead, and ``public_metadata`` drops it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

LOCATIONS_KEY = "_locations"


@dataclass(frozen=True)
class Citation:
    lines: tuple[int, int] | None = None
    page: int | None = None
    heading: str | None = None


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata a caller sees: without the internal location map."""
    if LOCATIONS_KEY not in metadata:
        return metadata
    return {k: v for k, v in metadata.items() if k != LOCATIONS_KEY}


def cite(text: str, metadata: dict[str, Any], start: int, end: int) -> Citation:
    """Lines (first-last, 1-based), page and heading path of ``text[start:end]``, as far as known."""
    raw = metadata.get(LOCATIONS_KEY)
    if isinstance(raw, dict):
        locations: dict[str, Any] = raw
        line_anchors = locations.get("lines", [[0, 1]])
    elif "path" in metadata:
        locations, line_anchors = {}, [[0, 1]]
    else:
        return Citation()
    last = max(start, end - 1)
    lines = None
    if isinstance(line_anchors, list) and line_anchors:
        lines = (_line_at(text, line_anchors, start), _line_at(text, line_anchors, last))
    page = _value_at(locations.get("pages"), start)
    heading = _value_at(locations.get("headings"), start)
    return Citation(
        lines=lines,
        page=int(page) if isinstance(page, int) else None,
        heading=heading if isinstance(heading, str) and heading else None,
    )


def _anchor(anchors: list[Any], offset: int) -> list[Any] | None:
    keys = [int(a[0]) for a in anchors]
    at = bisect_right(keys, offset) - 1
    return anchors[at] if at >= 0 else None


def _value_at(anchors: Any, offset: int) -> Any:
    if not isinstance(anchors, list) or not anchors:
        return None
    found = _anchor(anchors, offset)
    return found[1] if found is not None else None


def _line_at(text: str, anchors: list[Any], offset: int) -> int:
    found = _anchor(anchors, offset)
    base, line = (0, 1) if found is None else (int(found[0]), int(found[1]))
    return line + text.count("\n", base, max(base, offset))
