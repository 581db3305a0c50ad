"""Word and PowerPoint files (extra ``formats``): python-docx and python-pptx, both MIT, lxml-based.

.docx: paragraphs and tables in order, heading paths from the "Heading N" / "Title" styles.
.pptx: each slide's text frames and tables; the heading path is "slide N: <title>".
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from diver.errors import require
from diver.text.formats.base import FormatError, Parsed, TextBuilder, source_lines


def parse_docx(data: bytes, name: str) -> Parsed:
    docx = require("docx", "formats", "reading .docx files")
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FormatError(f"unreadable .docx ({type(exc).__name__}: {exc})") from exc
    builder = TextBuilder(track_lines=False)
    stack: list[tuple[int, str]] = []
    for block in document.iter_inner_content():
        if isinstance(block, docx.table.Table):
            for row in block.rows:
                builder.add(" | ".join(cell.text for cell in row.cells), heading=_path(stack))
            builder.blank()
            continue
        level = _heading_level(str(getattr(block.style, "name", "") or ""))
        if level is not None and block.text.strip():
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, " ".join(block.text.split())[:200])]
        for _, line in source_lines(block.text):
            builder.add(line, heading=_path(stack))
        builder.blank()
    metadata: dict[str, Any] = {}
    title = document.core_properties.title
    if title:
        metadata["title"] = str(title)[:300]
    return builder.build(metadata)


def _heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    if style.startswith("Heading ") and style[8:].isdigit():
        return int(style[8:])
    return None


def _path(stack: list[tuple[int, str]]) -> str | None:
    return " > ".join(t for _, t in stack) or None


def parse_pptx(data: bytes, name: str) -> Parsed:
    pptx = require("pptx", "formats", "reading .pptx files")
    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FormatError(f"unreadable .pptx ({type(exc).__name__}: {exc})") from exc
    builder = TextBuilder(track_lines=False)
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split())[:200] if title_shape is not None else ""
        heading = f"slide {number}: {title}" if title else f"slide {number}"
        for shape in slide.shapes:
            for text in _shape_texts(shape):
                for _, line in source_lines(text):
                    builder.add(line, heading=heading)
        builder.blank()
    return builder.build({"slides": len(deck.slides)})


def _shape_texts(shape: Any) -> list[str]:
    if getattr(shape, "has_text_frame", False):
        return [shape.text_frame.text]
    if getattr(shape, "has_table", False):
        return [" | ".join(cell.text for cell in row.cells) for row in shape.table.rows]
    return []
