"""Definition boundaries of JS/TS, Go, Rust, Java, C/C++ and shell files through tree-sitter grammars.

The grammars are the tree-sitter project's own PyPI wheels (``tree-sitter-<language>``); a language
whose grammar is not installed, or a file that does not parse, is chunked by lines (``None``).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

# suffix -> (grammar module, function returning the language)
_GRAMMARS: dict[str, tuple[str, str]] = {
    ".js": ("tree_sitter_javascript", "language"), ".jsx": ("tree_sitter_javascript", "language"),
    ".mjs": ("tree_sitter_javascript", "language"), ".cjs": ("tree_sitter_javascript", "language"),
    ".ts": ("tree_sitter_typescript", "language_typescript"), ".mts": ("tree_sitter_typescript", "language_typescript"),
    ".cts": ("tree_sitter_typescript", "language_typescript"), ".tsx": ("tree_sitter_typescript", "language_tsx"),
    ".go": ("tree_sitter_go", "language"), ".rs": ("tree_sitter_rust", "language"),
    ".java": ("tree_sitter_java", "language"), ".c": ("tree_sitter_c", "language"), ".h": ("tree_sitter_c", "language"),
    ".cc": ("tree_sitter_cpp", "language"), ".cpp": ("tree_sitter_cpp", "language"),
    ".cxx": ("tree_sitter_cpp", "language"), ".hpp": ("tree_sitter_cpp", "language"),
    ".hh": ("tree_sitter_cpp", "language"), ".hxx": ("tree_sitter_cpp", "language"),
    ".sh": ("tree_sitter_bash", "language"), ".bash": ("tree_sitter_bash", "language"),
}  # fmt: skip
# node types that start a definition, across these grammars
_DEFINITIONS = frozenset({
    "function_declaration", "generator_function_declaration", "class_declaration", "method_definition",
    "abstract_class_declaration", "interface_declaration", "type_alias_declaration", "enum_declaration",
    "method_declaration", "type_declaration", "function_item", "impl_item", "struct_item", "enum_item",
    "trait_item", "mod_item", "constructor_declaration", "record_declaration", "function_definition",
    "struct_specifier", "class_specifier", "namespace_definition", "lexical_declaration",
})  # fmt: skip
# containers whose members are definitions too (methods)
_CONTAINERS = frozenset({
    "class_declaration", "abstract_class_declaration", "class_body", "impl_item", "declaration_list",
    "class_specifier", "field_declaration_list", "namespace_definition", "interface_declaration",
    "interface_body", "export_statement", "program", "source_file", "translation_unit", "enum_body",
})  # fmt: skip


@cache
def _parser(module: str, function: str) -> Any:
    try:
        import tree_sitter

        grammar = importlib.import_module(module)
    except ImportError:
        return None
    return tree_sitter.Parser(tree_sitter.Language(getattr(grammar, function)()))


def definitions(text: str, name: str) -> list[tuple[int, str]] | None:
    """(first line, name) of the definitions in ``text``, or None without a grammar for ``name``."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    grammar = _GRAMMARS.get(suffix)
    parser = _parser(*grammar) if grammar else None
    if parser is None:
        return None
    tree = parser.parse(text.encode("utf-8"))
    found: list[tuple[int, str]] = []
    _walk(tree.root_node, "", found, depth=0)
    return sorted(set(found))


def _walk(node: Any, prefix: str, found: list[tuple[int, str]], depth: int) -> None:
    if depth > 6:
        return
    for child in node.named_children:
        kind = child.type
        inner = prefix
        if kind in _DEFINITIONS and not (kind == "lexical_declaration" and depth > 1):
            label = _name(child)
            if label and (kind != "lexical_declaration" or _declares_function(child)):
                found.append((child.start_point[0] + 1, f"{prefix}{label}"))
                inner = f"{prefix}{label}."
        if kind in _CONTAINERS or kind in _DEFINITIONS:
            _walk(child, inner, found, depth + 1)


def _name(node: Any) -> str | None:
    target = node.child_by_field_name("name") or node.child_by_field_name("declarator")
    if target is None and node.type in ("impl_item",):
        target = node.child_by_field_name("type")
    if target is None and node.type == "lexical_declaration" and node.named_children:
        target = node.named_children[0].child_by_field_name("name")
    depth = 0
    while target is not None and target.type not in ("identifier", "type_identifier", "field_identifier",
                                                    "property_identifier", "word", "name") and depth < 4:  # fmt: skip
        inner = target.child_by_field_name("declarator") or target.child_by_field_name("name")
        target, depth = inner, depth + 1
    if target is None:
        return None
    return bytes(target.text).decode("utf-8", "replace") if target.text is not None else None


def _declares_function(node: Any) -> bool:
    """``const f = () => ...`` / ``function`` expressions count as definitions; other constants do not."""
    for declarator in node.named_children:
        value = declarator.child_by_field_name("value")
        if value is not None and value.type in ("arrow_function", "function_expression", "function"):
            return True
    return False
