"""File formats: one parser per family, chosen by extension (``parse_file``).

| family | extensions | parser (licence) | citation |
| --- | --- | --- | --- |
| text | .txt .log .csv ... and files without an extension that hold text | built in | lines |
| Markdown | .md .markdown .mdx | markdown-it-py + mdit-py-plugins (MIT) | lines, heading |
| reST | .rst .rest | docutils (public domain/BSD) | lines, heading |
| code, config | .py .js .ts .go .rs .java .c .cpp .sh .sql .yaml .toml .json ... | ast / tree-sitter (MIT) | lines |
| HTML | .html .htm .xhtml | trafilatura (Apache-2.0) | heading |
| PDF | .pdf | pypdf (BSD-3) | page |
| notebook | .ipynb | nbformat (BSD-3), extra ``formats`` | heading |
| Office | .docx .pptx | python-docx, python-pptx (MIT), extra ``formats`` | heading |

A parser returns ``Parsed`` (text, metadata with the location map of ``diver.text.citations``, notes) or
raises ``FormatError`` (the file is skipped with that reason) or ``MissingDependency`` (naming the extra).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import PurePath

from diver.errors import MissingDependency
from diver.text.formats.base import FormatError, Parsed, decode
from diver.text.formats.code import CODE_NAMES, CODE_SUFFIXES, TEXT_SUFFIXES, parse_code, parse_text
from diver.text.formats.html import parse_html
from diver.text.formats.markdown import parse_markdown
from diver.text.formats.notebook import parse_notebook
from diver.text.formats.office import parse_docx, parse_pptx
from diver.text.formats.pdf import parse_pdf
from diver.text.formats.rst import parse_rst

log = logging.getLogger(__name__)
Parser = Callable[[bytes, str], Parsed]

PARSERS: dict[str, Parser] = {
    **{suffix: parse_text for suffix in TEXT_SUFFIXES},
    **{suffix: parse_code for suffix in CODE_SUFFIXES},
    ".md": parse_markdown, ".markdown": parse_markdown, ".mdx": parse_markdown,
    ".rst": parse_rst, ".rest": parse_rst,
    ".html": parse_html, ".htm": parse_html, ".xhtml": parse_html,
    ".pdf": parse_pdf,
    ".ipynb": parse_notebook,
    ".docx": parse_docx, ".pptx": parse_pptx,
}  # fmt: skip
SUPPORTED_SUFFIXES = frozenset(PARSERS)
"""Extensions read by a folder walk (lower case, with the dot); files without an extension are sniffed."""

__all__ = ["SUPPORTED_SUFFIXES", "FormatError", "Parsed", "decode", "parse_file", "parser_for", "supported"]


def parser_for(name: str) -> Parser | None:
    """The parser for a file name, or None when the format is not supported."""
    path = PurePath(name)
    if path.name.lower() in CODE_NAMES:
        return parse_code
    suffix = path.suffix.lower()
    if not suffix:
        return parse_text  # no extension (README, LICENSE, scripts): text if its content is text
    return PARSERS.get(suffix)


def supported(name: str) -> bool:
    return parser_for(name) is not None


def parse_file(name: str, data: bytes) -> Parsed:
    """Text, metadata and location map of a file's bytes; ``FormatError`` when it cannot be read."""
    parser = parser_for(name)
    if parser is None:
        raise FormatError(f"unsupported format {PurePath(name).suffix.lower() or '(no extension)'}")
    try:
        return parser(data, name)
    except (FormatError, MissingDependency):
        raise
    except Exception as exc:  # a third-party parser's own failure on one bad file: skip that file, go on
        log.warning("parser failed on %s", name, exc_info=True)
        raise FormatError(f"cannot be parsed ({type(exc).__name__}: {str(exc)[:200]})") from exc
