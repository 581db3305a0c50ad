"""PDF through pypdf (pure Python, BSD): text page by page, page numbers kept for citations.

A PDF whose pages hold no text (a scan without an OCR layer) is reported, not indexed empty; pages
without text in an otherwise textual PDF are listed in the notes.
"""

from __future__ import annotations

import io
import logging

from diver.text.formats.base import FormatError, Parsed, TextBuilder, source_lines

logging.getLogger("pypdf").setLevel(logging.ERROR)


def parse_pdf(data: bytes, name: str) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FormatError("encrypted PDF (a password is needed)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, ZeroDivisionError) as exc:  # fmt: skip
        raise FormatError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
    builder = TextBuilder(track_lines=False)
    empty = [number for number, text in enumerate(pages, start=1) if not text.strip()]
    if len(empty) == len(pages):
        raise FormatError(f"no text layer in {len(pages)} page(s): a scanned PDF? (OCR it first)")
    for number, text in enumerate(pages, start=1):
        for _, line in source_lines(text):
            builder.add(line, page=number)
        builder.blank()
    parsed = builder.build({"pages": len(pages)})
    if empty:
        parsed.notes.append(f"indexed, but pages without text (scanned?): {', '.join(map(str, empty[:20]))}")
    return parsed
