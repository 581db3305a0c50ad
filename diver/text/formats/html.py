"""HTML: the main text without navigation and boilerplate (trafilatura), title into metadata, heading paths.

trafilatura turns the page into Markdown (headings kept), which the Markdown parser maps to heading
paths. The text is not the file's, so no line numbers are kept. A page where trafilatura finds no main
text falls back to all of its text (a short page is still a page).
"""

from __future__ import annotations

import logging
from typing import Any

from diver.text.formats.base import FormatError, Parsed, decode
from diver.text.formats.markdown import markdown_text

logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
logging.getLogger("htmldate").setLevel(logging.CRITICAL)


def parse_html(data: bytes, name: str) -> Parsed:
    import trafilatura

    html = decode(data)
    options: dict[str, Any] = {"include_formatting": True, "include_tables": True, "include_links": False,
                               "include_images": False, "include_comments": False, "favor_recall": True}  # fmt: skip
    extracted = trafilatura.bare_extraction(html, output_format="python", with_metadata=True, **options)
    markdown = trafilatura.extract(html, output_format="markdown", with_metadata=False, **options)
    if not markdown:
        markdown = trafilatura.html2txt(html)
    if not markdown or not markdown.strip():
        raise FormatError("no text found in the HTML")
    parsed = markdown_text(markdown, track_lines=False)
    title = getattr(extracted, "title", None) if extracted is not None else None
    if title:
        parsed.metadata["title"] = " ".join(str(title).split())[:300]
    return parsed
