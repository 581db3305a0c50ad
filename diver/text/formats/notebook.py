"""Jupyter notebooks through nbformat (extra ``formats``): markdown and code cells, outputs dropped.

Each cell's heading path comes from the notebook's Markdown headings; line numbers are not kept (a
notebook is JSON on disk), the cell number goes into the heading path's place when no heading is known.
"""

from __future__ import annotations

import warnings
from typing import Any

from diver.errors import require
from diver.text.formats.base import FormatError, Parsed, TextBuilder, decode, source_lines
from diver.text.formats.markdown import markdown_text


def parse_notebook(data: bytes, name: str) -> Parsed:
    nbformat = require("nbformat", "formats", "reading .ipynb notebooks")
    try:
        with warnings.catch_warnings():  # nbformat warns on cells without ids (old notebooks): harmless here
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(decode(data), as_version=4)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"unreadable notebook ({type(exc).__name__}: {exc})") from exc
    builder = TextBuilder(track_lines=False)
    heading: str | None = None
    language = str(notebook.metadata.get("kernelspec", {}).get("language", "") or "")
    for number, cell in enumerate(notebook.cells, start=1):
        source = str(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            parsed = markdown_text(source, track_lines=False)
            anchors = parsed.metadata.get("_locations", {}).get("headings") or []
            heading = anchors[-1][1] if anchors else heading
        elif cell.get("cell_type") != "code":
            continue
        for _, line in source_lines(source):
            builder.add(line, heading=heading or f"cell {number}")
        builder.blank()
    metadata: dict[str, Any] = {"cells": len(notebook.cells)}
    if language:
        metadata["language"] = language
    return builder.build(metadata)
