"""diver.text.formats and diver.text.citations: each format's text, metadata and the lines/page/heading a
span cites; definition-boundary chunks; binary, oversized, broken and scanned files skipped with reasons."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from format_files import docx_bytes, notebook_json, tiny_pdf, walrus_page, write_format_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from diver.errors import MissingDependency
from diver.text.citations import LOCATIONS_KEY, cite, public_metadata
from diver.text.documents import Document, RegexSpanner, chunk_document, clean_text, make_document
from diver.text.formats import FormatError, parse_file
from diver.text.ingest import read_documents


def where(name: str, data: bytes | str, phrase: str) -> tuple[str, dict, tuple[int, int] | None, int | None, str | None]:
    parsed = parse_file(name, data.encode("utf-8") if isinstance(data, str) else data)
    doc = make_document(name, parsed.text, {"path": name, **parsed.metadata}, precleaned=True)
    assert doc.text == parsed.text
    at = doc.text.index(phrase)
    got = cite(doc.text, doc.metadata, at, at + len(phrase))
    return doc.text, doc.metadata, got.lines, got.page, got.heading


def line_of(source: str, phrase: str) -> int:
    return source[: source.index(phrase)].count("\n") + 1


def test_text_lines_survive_collapsed_blank_lines_and_unicode() -> None:
    source = "  \n\nﬁrst line\t\twith  tabs\r\n" + "\n" * 7 + "Ünïcode\u00a0café line\n\n\n\nthe target phrase\n"
    text, metadata, lines, page, _ = where("notes.txt", source, "target phrase")
    assert lines == (line_of(source.replace("\r\n", "\n"), "target phrase"),) * 2 == (15, 15)
    assert "first line with tabs" in text and page is None
    assert cite(text, metadata, 0, 5).lines == (3, 3)  # leading blank lines dropped: line 3 is the first


def test_plain_file_without_map_counts_from_line_one() -> None:
    text, metadata, lines, _, _ = where("a.txt", "one\ntwo\nthree target\n", "target")
    assert LOCATIONS_KEY not in metadata and lines == (3, 3)
    assert cite("x\ny", {"id-only": 1}, 0, 3).lines is None  # .jsonl documents: no location at all


def test_markdown_heading_path_and_lines() -> None:
    source = "# Guide\n\nintro\n\n\n\n## Install\n\n### Linux\n\nrun the zeppelin installer\n\n## Use\n\nuse it\n"
    _, metadata, lines, _, heading = where("guide.md", source, "zeppelin")
    assert heading == "Guide > Install > Linux" and lines == (11, 11)
    _, _, _, _, heading = where("guide.md", source, "use it")
    assert heading == "Guide > Use"


def test_mdx_frontmatter_into_metadata_jsx_and_imports_stripped() -> None:
    source = (
        "---\ntitle: Widgets\ndate: 2024-01-02\n---\nimport Tabs from '@theme/Tabs'\nexport const x = 1\n\n"
        "# Widgets\n\n<Tabs>\n  <Note type=\"info\">The marmalade widget hums.</Note>\n</Tabs>\n"
    )
    text, metadata, lines, _, heading = where("page.mdx", source, "marmalade widget")
    assert metadata["frontmatter"] == {"title": "Widgets", "date": "2024-01-02"}
    assert "import" not in text and "<Note" not in text and "title:" not in text
    assert lines == (11, 11) and heading == "Widgets"


def test_rst_heading_path_include_never_reads_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET CONTENT", encoding="utf-8")
    source = f"Manual\n======\n\nIntro :ref:`x`.\n\n.. include:: {secret}\n\nTuning\n------\n\nSet the glockenspiel.\n"
    text, _, lines, _, heading = where("manual.rst", source, "glockenspiel")
    assert heading == "Manual > Tuning" and lines == (11, 11)
    assert "TOP SECRET" not in text


def test_html_main_text_title_heading_no_navigation() -> None:
    html = walrus_page()
    text, metadata, lines, _, heading = where("index.html", html, "walrus herring")
    assert metadata["title"] == "Walrus Handbook" and heading == "Walrus Handbook > Feeding"
    assert lines is None  # the text is not the file's
    assert "NavOne" not in text and "tracking" not in text


def test_python_and_typescript_symbols_and_definition_chunks() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(20))
    inner = body.replace("\n", "\n    ")
    source = f"import os\n\n\n@decorator\ndef first():\n{body}\n\n\nclass Second:\n    def method(self):\n    {inner}\n"
    parsed = parse_file("mod.py", source.encode())
    assert parsed.metadata["symbols"] == ["first", "Second", "Second.method"]
    doc = make_document("mod.py", parsed.text, {"path": "mod.py", **parsed.metadata}, precleaned=True)
    chunks = chunk_document(doc, RegexSpanner(), 120, 0.2)
    breaks = [0, *doc.metadata[LOCATIONS_KEY]["breaks"]]

    def at_definition(start: int) -> bool:
        return any(b <= start and not doc.text[b:start].strip() for b in breaks)

    assert len(chunks) == 2 and all(at_definition(c.start) for c in chunks), chunks  # cut where definitions start
    assert "x19 = 19" in chunks[0].text and "@decorator" in chunks[0].text  # `first` whole in one chunk
    assert cite(doc.text, doc.metadata, chunks[1].start, chunks[1].end).lines == (29, 49)
    plain = chunk_document(Document(id="m", text=doc.text), RegexSpanner(), 120, 0.2)
    assert not all(at_definition(c.start) for c in plain)  # token windows alone would cut inside a definition
    ts = parse_file("app.ts", b"export function greet(n: string) { return n; }\nexport class Kiosk {\n  open() {}\n}\n")
    assert ts.metadata["symbols"] == ["greet", "Kiosk", "Kiosk.open"]
    go = parse_file("main.go", b"package main\n\nfunc Lantern() string { return \"x\" }\n")
    assert go.metadata["symbols"] == ["Lantern"]


def test_unparsable_code_is_indexed_by_lines() -> None:
    parsed = parse_file("broken.py", b"def broken(:\n    pass\n")
    assert "symbols" not in parsed.metadata and "def broken" in parsed.text


def test_pdf_pages_and_scanned_pdf_reported() -> None:
    text, metadata, lines, page, _ = where("r.pdf", tiny_pdf([["cover"], ["x"], ["the harpsichord inventory"]]),
                                           "harpsichord")  # fmt: skip
    assert page == 3 and lines is None and metadata["pages"] == 3
    with pytest.raises(FormatError, match="no text layer in 2 page"):
        parse_file("scan.pdf", tiny_pdf([[], []]))
    partly = parse_file("mixed.pdf", tiny_pdf([["some text"], []]))
    assert partly.notes == ["indexed, but pages without text (scanned?): 2"]
    with pytest.raises(FormatError, match="unreadable PDF|cannot be parsed"):
        parse_file("bad.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")


def test_notebook_cells_without_outputs() -> None:
    text, metadata, _, _, heading = where("a.ipynb", notebook_json("# Analysis\nThe pelican.", "x = 1", "OUTPUT!"),
                                          "x = 1")  # fmt: skip
    assert "OUTPUT!" not in text and heading == "Analysis" and metadata["language"] == "python"


def test_docx_heading_path() -> None:
    _, _, _, _, heading = where("m.docx", docx_bytes("Budget", ["The tamarind budget."]), "tamarind")
    assert heading == "Budget"


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docx", None)  # import docx -> ImportError, as without the extra
    monkeypatch.setitem(sys.modules, "nbformat", None)
    with pytest.raises(MissingDependency, match=r"diver-retrieval\[formats\]"):
        parse_file("m.docx", b"PK")
    with pytest.raises(MissingDependency, match=r"diver-retrieval\[formats\]"):
        parse_file("a.ipynb", b"{}")


def test_folder_read_reports_counts_per_extension_and_never_crashes(tmp_path: Path) -> None:
    expect = write_format_tree(tmp_path / "tree")
    (tmp_path / "tree" / "huge.md").write_text("y" * 5000, encoding="utf-8")
    (tmp_path / "tree" / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    docs, skipped = read_documents(tmp_path / "tree", max_bytes=4000, max_file_bytes=1_000_000)
    assert {d.id for d in docs} == set(expect)
    assert "unsupported format .png: 2 files (images/a.png, images/b.png)" in skipped
    assert "unsupported format .bin: 1 file (data.bin)" in skipped
    assert "fake.txt: binary file (NUL bytes)" in skipped
    assert any(s.startswith("scan.pdf: no text layer") for s in skipped)
    assert any(s.startswith("huge.md:") and "limit is 4000" in s for s in skipped)
    assert any(s.startswith("broken.docx:") for s in skipped)


def test_public_metadata_drops_the_map_and_cleaning_is_idempotent() -> None:
    parsed = parse_file("g.md", b"# A\n\n\n\n\nb\n")
    assert LOCATIONS_KEY in parsed.metadata and LOCATIONS_KEY not in public_metadata(parsed.metadata)
    assert clean_text(parsed.text) == parsed.text


def test_html_in_its_declared_encoding() -> None:
    body = "Le café crème est servi chaud avec du pain frais. " * 8
    page = f'<html><head><meta charset="iso-8859-1"><title>Café</title></head><body><article><h1>Menu</h1><p>{body}</p></article></body></html>'
    text, _, _, _, heading = where("latin.html", page.encode("latin-1"), "café crème")
    assert heading == "Menu" and "pain frais" in text


def test_cli_table_shows_where_a_hit_comes_from() -> None:
    from diver.cli import _cited
    from diver.hits import SearchHit

    assert _cited(SearchHit(id="guide.md", rank=1, score=1.0, lines=(40, 45))) == "guide.md:40-45"
    assert _cited(SearchHit(id="r.pdf", rank=1, score=1.0, page=2)) == "r.pdf p.2"
    assert _cited(SearchHit(id="j1", rank=1, score=1.0)) == "j1"


def test_short_multi_page_pdf_is_chunked_per_page() -> None:
    parsed = parse_file("r.pdf", tiny_pdf([["alpha page one"], ["beta page two"], ["gamma page three"]]))
    doc = make_document("r.pdf", parsed.text, {"path": "r.pdf", **parsed.metadata}, precleaned=True)
    chunks = chunk_document(doc, RegexSpanner(), 256, 0.2)
    assert [c.text for c in chunks] == ["alpha page one", "beta page two", "gamma page three"]
    assert [cite(doc.text, doc.metadata, c.start, c.end).page for c in chunks] == [1, 2, 3]


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="ab \n.#", min_size=1, max_size=1500), budget=st.integers(16, 80),
       overlap=st.floats(0, 0.85), cuts=st.lists(st.integers(0, 1500), max_size=12),
       page_cuts=st.lists(st.integers(1, 1500), max_size=4))  # fmt: skip
def test_structured_chunks_cover_the_text_and_keep_to_pages(text: str, budget: int, overlap: float,
                                                            cuts: list[int], page_cuts: list[int]) -> None:  # fmt: skip
    if not text.strip():
        return
    pages = [[0, 1]] + [[offset, n] for n, offset in enumerate(sorted(set(page_cuts)), start=2)]
    doc = Document(id="d", text=text, metadata={LOCATIONS_KEY: {"breaks": sorted(cuts), "pages": pages}})
    spanner = RegexSpanner()
    chunks = chunk_document(doc, spanner, budget, overlap)
    tokens = spanner.token_spans(text)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    for c in chunks:
        assert c.text == text[c.start : c.end] and len(spanner.token_spans(c.text)) <= max(budget, 1)
        assert len({cite(text, doc.metadata, a, b).page for a, b in tokens if c.start <= a and b <= c.end}) <= 1
    for start, end in tokens:
        assert any(c.start <= start and end <= c.end for c in chunks), (start, end)


def test_code_keeps_its_indentation_other_spaces_collapse(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("class A:\n\tdef f(self):\n        return  1   # two  spaces\n", encoding="utf-8")
    (tmp_path / "p.md").write_text("- item\n    - nested   item\n", encoding="utf-8")
    docs, _ = read_documents(tmp_path, max_bytes=10_000)
    by_id = {d.id: d.text for d in docs}
    assert by_id["m.py"] == "class A:\n\tdef f(self):\n        return 1 # two spaces"
    assert by_id["p.md"] == "- item\n    - nested item"
