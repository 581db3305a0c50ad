"""Issue 23 "Done when": a folder with one file of each format, indexed through MCP ``index_path`` (the SDK
client against the real server): each file is found by a phrase unique to it, its hit cites the right path
and line range (page for PDF, heading path where the format has headings), ``get_document(around_chunk=)``
cites the same, and unsupported files are listed with counts per extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from format_files import write_format_tree

pytest.importorskip("mcp")
from mcp import Client  # noqa: E402

from diver.config import load_settings  # noqa: E402
from diver.server.app import build_server  # noqa: E402
from diver.text.citations import LOCATIONS_KEY  # noqa: E402


def settings(tmp_path: Path) -> Any:
    return load_settings(
        data_dir=tmp_path / "data",
        embedding={"provider": "hashing"},
        chunking={"max_tokens": 24, "overlap": 0.2},  # small chunks: line ranges narrower than the files
        server={"allowed_roots": [tmp_path / "docs"]},
    )


def source_line(path: Path, phrase: str) -> int:
    text = path.read_text(encoding="utf-8")
    return text[: text.index(phrase)].count("\n") + 1


async def test_every_format_is_found_and_cited(tmp_path: Path) -> None:
    expect = write_format_tree(tmp_path / "docs" / "tree")
    async with Client(build_server(settings(tmp_path))) as client:
        result = await client.call_tool("index_path", {"collection": "docs", "path": "tree", "wait": True})
        assert not result.is_error, result.content
        out = result.structured_content
        assert out["added"] == len(expect)
        assert "unsupported format .png: 2 files (images/a.png, images/b.png)" in out["skipped"]
        assert "unsupported format .bin: 1 file (data.bin)" in out["skipped"]
        assert "fake.txt: binary file (NUL bytes)" in out["skipped"]
        assert any(s.startswith("scan.pdf: no text layer in 2 page(s)") for s in out["skipped"])

        for rel, want in expect.items():
            phrase = str(want["phrase"])
            found = await client.call_tool("search", {"collection": "docs", "query": phrase, "k": 3})
            hit = found.structured_content["hits"][0]
            assert hit["id"] == rel and hit["source"] == rel, (rel, [h["id"] for h in found.structured_content["hits"]])
            assert LOCATIONS_KEY not in hit["metadata"]
            check_citation(tmp_path / "docs" / "tree" / rel, rel, want, hit)
            got = await client.call_tool(
                "get_document", {"collection": "docs", "id": rel, "around_chunk": hit["chunk"], "window": 0}
            )
            chunk = got.structured_content["chunks"][0]
            assert (chunk["lines"], chunk["page"], chunk["heading"]) == (hit["lines"], hit["page"], hit["heading"])
            assert phrase.split()[0] in chunk["text"]
            assert LOCATIONS_KEY not in got.structured_content["metadata"]


def check_citation(path: Path, rel: str, want: dict[str, Any], hit: dict[str, Any]) -> None:
    phrase = str(want["phrase"])
    if "page" in want:
        assert hit["page"] == want["page"] and hit["lines"] is None, (rel, hit)
    if "heading" in want:
        assert hit["heading"] == want["heading"], (rel, hit["heading"], hit["lines"], hit["highlight"])
    if "title" in want:
        assert hit["metadata"]["title"] == want["title"]
    if "symbols" in want:
        assert hit["metadata"]["symbols"] == want["symbols"]
    if "frontmatter" in want:
        assert hit["metadata"]["frontmatter"] == want["frontmatter"]
    text_based = not rel.endswith((".pdf", ".html", ".ipynb", ".docx", ".pptx"))
    if text_based:
        first, last = hit["lines"]
        line = source_line(path, phrase)
        total = path.read_text(encoding="utf-8").count("\n") + 1
        assert first <= line <= last <= total, (rel, hit["lines"], line)
        lines = path.read_text(encoding="utf-8").split("\n")
        assert lines[first - 1].strip(), (rel, "a cited range starts on a line with text")
    else:
        assert hit["lines"] is None, (rel, hit)
