"""HTML: the main text without navigation and boilerplate (trafilatura), title into metadata, heading paths.

trafilatura turns the page into Markdown (headings kept), which the Markdown parser maps to heading
paths; the page's own encoding is honoured (trafilatura detects it), the title comes from ``<title>``/meta.
Date and author extraction is not run (it tripled the time per page). The text is not the file's, so no line numbers are kept. A page where trafilatura finds no main
text falls back to all of its text (a short page is still a page).
"""

from __future__ import annotations

import logging
from typing import Any

from diver.text.formats.base import BINARY_SNIFF_BYTES, FormatError, Parsed
from diver.text.formats.markdown import markdown_text

logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
logging.getLogger("htmldate").setLevel(logging.CRITICAL)


def parse_html(data: bytes, name: str) -> Parsed:
    import trafilatura
    from trafilatura.metadata import extract_title
    from trafilatura.utils import load_html

    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise FormatError("binary file (NUL bytes)")
    tree = load_html(data)  # bytes: the page's declared or detected encoding, not only UTF-8
    options: dict[str, Any] = {"include_formatting": True, "include_tables": True, "include_links": False,
                               "include_images": False, "include_comments": False, "favor_recall": True}  # fmt: skip
    title = extract_title(tree) if tree is not None else None
    markdown = trafilatura.extract(tree, output_format="markdown", **options) if tree is not None else None
    if not markdown:
        markdown = trafilatura.html2txt(data)
    if not markdown or not markdown.strip():
        raise FormatError("no text found in the HTML")
    parsed = markdown_text(markdown, track_lines=False)
    if title:
        parsed.metadata["title"] = " ".join(str(title).split())[:300]
    return parsed
