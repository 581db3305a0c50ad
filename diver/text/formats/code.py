"""Plain text, source code and configuration files: the file's own lines, line numbers kept.

Definitions (functions, classes, methods) become chunk boundaries and their names go into metadata
``symbols``: Python through the standard library's own parser (``ast``), other languages through
tree-sitter grammars when the ``code`` extra is installed (``diver.text.formats.treesitter``), by lines
otherwise. A file that does not parse is still indexed, by lines.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from diver.text.formats.base import MAX_SYMBOLS, Parsed, TextBuilder, decode, source_lines

TEXT_SUFFIXES = frozenset({".txt", ".text", ".log", ".csv", ".tsv", ".tex", ".bib", ".org", ".adoc", ".asciidoc"})
CODE_SUFFIXES = frozenset({
    ".py", ".pyi", ".pyx", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".go", ".rs", ".java",
    ".kt", ".kts", ".scala", ".groovy", ".gradle", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cs",
    ".rb", ".php", ".swift", ".m", ".mm", ".lua", ".r", ".jl", ".pl", ".pm", ".hs", ".ex", ".exs", ".erl", ".dart",
    ".vue", ".svelte", ".css", ".scss", ".less", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".sql",
    ".graphql", ".proto", ".tf", ".cmake", ".mk", ".el", ".clj", ".zig", ".nim", ".v", ".sv", ".vhd",
    ".yaml", ".yml", ".toml", ".json", ".jsonc", ".json5", ".ini", ".cfg", ".conf", ".properties",
    ".xml", ".xsd", ".dockerfile", ".nix",
})  # fmt: skip
CODE_NAMES = frozenset({"makefile", "dockerfile", "gnumakefile", "cmakelists.txt", "justfile", "rakefile", "gemfile"})


def parse_text(data: bytes, name: str) -> Parsed:
    """A text file line by line (also the fallback for a file without an extension)."""
    builder = TextBuilder()
    for number, line in source_lines(decode(data)):
        builder.add(line, number)
    return builder.build({})


def parse_code(data: bytes, name: str) -> Parsed:
    """A source file line by line, definitions marked as chunk boundaries, symbol names in metadata."""
    text = decode(data)
    definitions = _python_definitions(text) if name.lower().endswith((".py", ".pyi")) else None
    if definitions is None:
        from diver.text.formats.treesitter import definitions as ts_definitions

        definitions = ts_definitions(text, name)
    starts = {line: symbol for line, symbol in (definitions or [])}
    builder = TextBuilder()
    for number, line in source_lines(text):
        builder.add(line, number, definition=number in starts)
    metadata: dict[str, Any] = {}
    if definitions:
        metadata["symbols"] = _unique([symbol for _, symbol in definitions])[:MAX_SYMBOLS]
    return builder.build(metadata)


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _python_definitions(text: str) -> list[tuple[int, str]] | None:
    """(first line incl. decorators, qualified name) of Python's classes and functions; None if it fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found: list[tuple[int, str]] = []
    _collect(tree.body, "", found)
    return sorted(found)


def _collect(body: list[ast.stmt], prefix: str, found: list[tuple[int, str]]) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            name = f"{prefix}{node.name}"
            found.append((first, name))
            if isinstance(node, ast.ClassDef):
                _collect(node.body, f"{name}.", found)
