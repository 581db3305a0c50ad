"""Markdown and MDX through markdown-it-py (CommonMark): the file's lines, heading paths, frontmatter.

Frontmatter (YAML between ``---`` lines, via mdit-py-plugins) goes into metadata ``frontmatter`` and out
of the text. In MDX, ``import``/``export`` lines are dropped and JSX tags are stripped to their text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.front_matter import front_matter_plugin

from diver.text.formats.base import Parsed, TextBuilder, decode, source_lines

_TAG = re.compile(r"</?[A-Za-z][\w.:-]*(\s[^<>]*?)?/?>|<>|</>|\{/\*.*?\*/\}")
_ESM = re.compile(r"^\s*(import|export)\s")
MAX_HEADING_CHARS = 200


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").use(front_matter_plugin)


def parse_markdown(data: bytes, name: str) -> Parsed:
    text = decode(data)
    mdx = name.lower().endswith(".mdx")
    return markdown_text(text, mdx=mdx, track_lines=True)


def markdown_text(text: str, *, mdx: bool = False, track_lines: bool = True) -> Parsed:
    """Parse Markdown ``text`` (also the Markdown that HTML extraction produces) into a ``Parsed``."""
    tokens = _parser().parse(text)
    lines = source_lines(text)
    metadata: dict[str, Any] = {}
    dropped: set[int] = set()
    headings: dict[int, str] = {}
    stack: list[tuple[int, str]] = []
    for at, token in enumerate(tokens):
        span = range(token.map[0], token.map[1]) if token.map else range(0)
        if token.type == "front_matter":
            dropped.update(span)
            frontmatter = _yaml(token.content)
            if frontmatter is not None:
                metadata["frontmatter"] = frontmatter
        elif token.type == "heading_open" and token.map:
            level = int(token.tag[1:])
            title = _inline_text(tokens[at + 1]) if at + 1 < len(tokens) else ""
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title[:MAX_HEADING_CHARS])]
            headings[token.map[0]] = " > ".join(t for _, t in stack if t)
        elif mdx and token.type == "paragraph_open" and token.map and _ESM.match(lines[token.map[0]][1]):
            dropped.update(span)
    builder = TextBuilder(track_lines=track_lines)
    current: str | None = None
    for index, (number, line) in enumerate(lines):
        current = headings.get(index, current)
        if index in dropped:
            builder.add("", number)
            continue
        builder.add(_TAG.sub("", line) if mdx else line, number, heading=current)
    return builder.build(metadata)


def _inline_text(token: Token) -> str:
    if token.type != "inline":
        return ""
    parts = [c.content for c in token.children or [] if c.type in ("text", "code_inline")]
    return " ".join("".join(parts).split())


def _yaml(content: str) -> dict[str, Any] | None:
    """Frontmatter as JSON-safe data (dates become strings); None when it is not a YAML mapping."""
    import yaml

    try:
        loaded = yaml.safe_load(content)
    except yaml.YAMLError:
        return None
    if not isinstance(loaded, dict):
        return None
    safe: dict[str, Any] = json.loads(json.dumps(loaded, default=str))
    return safe
