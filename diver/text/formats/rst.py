"""reStructuredText: the file's own lines (reST reads as plain text), heading paths from docutils.

docutils parses the document with file insertion and raw output disabled (an ``include`` directive
never reads another file) and all reports silenced; Sphinx-only roles and directives do no harm.
"""

from __future__ import annotations

import io
from typing import Any

from diver.text.formats.base import Parsed, TextBuilder, decode, source_lines

_SETTINGS: dict[str, Any] = {
    "report_level": 5, "halt_level": 5, "warning_stream": io.StringIO(), "file_insertion_enabled": False,
    "raw_enabled": False, "_disable_config": True, "doctitle_xform": False, "sectsubtitle_xform": False,
    "input_encoding": "unicode",
}  # fmt: skip


def parse_rst(data: bytes, name: str) -> Parsed:
    text = decode(data)
    headings = _headings(text)
    builder = TextBuilder()
    current: str | None = None
    for number, line in source_lines(text):
        current = headings.get(number, current)
        builder.add(line, number, heading=current)
    return builder.build({})


def _headings(text: str) -> dict[int, str]:
    """Line where each section title starts -> its heading path ("Guide > Install")."""
    import docutils.core
    import docutils.nodes as nodes

    try:
        tree = docutils.core.publish_doctree(text, settings_overrides={**_SETTINGS, "warning_stream": io.StringIO()})
    except (docutils.utils.SystemMessage, ValueError, AssertionError, IndexError, RecursionError):
        return {}
    found: dict[int, str] = {}
    for section in tree.findall(nodes.section):
        title = section.next_node(nodes.title)
        if title is None or title.line is None:
            continue
        path = [title.astext()]
        parent = section.parent
        while isinstance(parent, nodes.section):
            parent_title = parent.next_node(nodes.title)
            if parent_title is not None:
                path.insert(0, parent_title.astext())
            parent = parent.parent
        found[max(1, int(title.line) - 1)] = " > ".join(" ".join(p.split())[:200] for p in path)
    return found
