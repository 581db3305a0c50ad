"""What a format parser returns, and the builder that keeps source lines, pages and headings mapped.

A parser hands the builder lines with their source line number (and page/heading when it knows them).
The builder cleans each line the way ``clean_text`` would (NFKC, control characters dropped, runs of
spaces collapsed, trailing spaces cut, runs of blank lines collapsed), except that the file's own lines
(text, Markdown, reST, code) keep their indentation; the document is made with ``precleaned=True`` so
the offsets of the location map stay true.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from diver.text.citations import LOCATIONS_KEY

BINARY_SNIFF_BYTES = 8192
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_LINE_END = re.compile(r"\r\n|\r|\n")
MAX_SYMBOLS = 64
"""Symbol names kept in metadata (they travel with every hit of the file)."""


class FormatError(ValueError):
    """A file could not be turned into text (the reason is the message); it is skipped, never fatal."""


@dataclass
class Parsed:
    """Text of one file, its metadata (JSON) and its location map (see ``diver.text.citations``)."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """UTF-8 text of ``data``; ``FormatError`` for binary content (NUL bytes) or another encoding."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise FormatError("binary file (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 (invalid byte at offset {exc.start})") from exc


def source_lines(text: str, first: int = 1) -> list[tuple[int, str]]:
    """(line number, line) of ``text``, split on \\r\\n, \\r or \\n only (what editors count)."""
    return list(enumerate(_LINE_END.split(text), start=first))


def clean_line(line: str, keep_indent: bool = False) -> str:
    """``clean_text`` for one line; ``keep_indent`` leaves its leading spaces and tabs as they are."""
    line = unicodedata.normalize("NFKC", line)
    line = _LINE_END.sub(" ", line)
    line = _CONTROL.sub("", line)
    body = line.lstrip(" \t") if keep_indent else line
    indent = line[: len(line) - len(body)]
    return indent + _SPACES.sub(" ", body).rstrip() if body.strip() else ""


class TextBuilder:
    """Accumulates cleaned lines and the anchors that map text offsets back to lines, pages, headings.

    ``track_lines=False`` for formats whose text is not the file's (HTML, PDF, notebooks, Office).
    """

    def __init__(self, *, track_lines: bool = True) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._blank_pending = False
        self._last_line: int | None = None
        self._anchors: dict[str, list[Any]] = {"lines": [], "pages": [], "headings": [], "breaks": []}
        self._heading: str | None = None
        self._page: int | None = None
        self.track_lines = track_lines

    def add(self, line: str, number: int | None = None, *, page: int | None = None,
            heading: str | None = None, definition: bool = False) -> None:  # fmt: skip
        """One source line (``number`` 1-based); an empty one counts as a blank line."""
        cleaned = clean_line(line, keep_indent=self.track_lines)
        if not self._parts and not self.track_lines:
            cleaned = cleaned.lstrip()
        if not cleaned:
            self._blank_pending = bool(self._parts)
            return
        step = 2 if self._blank_pending else 1
        if self._parts:
            self._append("\n" * step)
        self._blank_pending = False
        offset = self._size
        if self.track_lines and number is not None:
            expected = None if self._last_line is None else self._last_line + step
            if number != expected:
                self._anchors["lines"].append([offset, number])
            self._last_line = number
        self._mark("pages", offset, page)
        if self._mark("headings", offset, heading) and offset > 0:
            definition = True  # a new section: chunks prefer to start there too
        if definition:
            self._anchors["breaks"].append(offset)
        self._append(cleaned)

    def blank(self) -> None:
        """A paragraph break (for formats without source lines)."""
        self._blank_pending = bool(self._parts)

    def _mark(self, kind: str, offset: int, value: Any) -> bool:
        anchors = self._anchors[kind]
        if value is not None and (not anchors or anchors[-1][1] != value):
            anchors.append([offset, value])
            return True
        return False

    def _append(self, piece: str) -> None:
        self._parts.append(piece)
        self._size += len(piece)

    def build(self, metadata: dict[str, Any]) -> Parsed:
        """The text and ``metadata`` plus the location map (left out when lines map one to one from 1)."""
        text = "".join(self._parts)
        anchors = {k: v for k, v in self._anchors.items() if v}
        if not self.track_lines:
            anchors["lines"] = []  # the text is not the file's: no line numbers
        elif anchors.get("lines") == [[0, 1]]:
            anchors.pop("lines")  # one to one from line 1: the default
        if anchors:
            metadata = {**metadata, LOCATIONS_KEY: anchors}
        return Parsed(text, metadata)
