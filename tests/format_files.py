"""Files of every supported format, made in the test (no binaries shipped): each holds a phrase unique to it."""

from __future__ import annotations

import io
import json
from pathlib import Path


def tiny_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF (Helvetica text, one content stream per page), built by hand: ``pages`` of lines."""
    objects: list[bytes] = []
    count = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        body = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines) + " ET"
        stream = body.encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def docx_bytes(title: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pptx_bytes(title: str, body: str) -> bytes:
    import pptx

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = title
    slide.placeholders[1].text = body
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def notebook_json(markdown: str, code: str, output: str) -> str:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": markdown},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": code,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": output}]},
    ]  # fmt: skip
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": "python", "name": "python3",
                       "display_name": "Python 3"}}, "nbformat": 4, "nbformat_minor": 5})  # fmt: skip


def walrus_page() -> str:
    """A documentation page: navigation, an article with headings, a footer and a script."""
    about = "<p>" + "Walruses are large flippered marine mammals of the Arctic seas. " * 3 + "</p>"
    return (
        "<html><head><title>Walrus Handbook</title></head><body><nav><ul><li><a href='/a'>NavOne</a></li>"
        f"<li><a href='/b'>NavTwo</a></li></ul></nav><main><h1>Walrus Handbook</h1>{about}<h2>Feeding</h2><p>Feed "
        f"the walrus herring at the tidal marker every morning before the keepers arrive.</p>{about}</main>"
        "<footer>Copyright 2024 footer links</footer><script>var tracking = 1;</script></body></html>"
    )


FILLER = "\n".join(f"Filler line {i} about nothing in particular." for i in range(1, 40))


def write_format_tree(root: Path) -> dict[str, dict[str, object]]:
    """One file per format under ``root``; returns path -> {phrase, lines | page | heading} expected."""
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, dict[str, object]] = {}

    def put(rel: str, content: str | bytes, **want: object) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        expect[rel] = want

    put("notes.txt", f"{FILLER}\n\n\n\nThe quokka ledger balances at dawn.\n", phrase="quokka ledger", lines=(40, 44))
    put("guide.md", f"# Guide\n\n{FILLER}\n\n## Install\n\nRun the zeppelin installer twice.\n",
        phrase="zeppelin installer", heading="Guide > Install")  # fmt: skip
    put("page.mdx", "---\ntitle: Widgets\ntags: [a, b]\n---\nimport Tabs from '@theme/Tabs'\n\n# Widgets\n\n"
        "<Tabs>\n<Note>The marmalade widget hums softly.</Note>\n</Tabs>\n",
        phrase="marmalade widget", heading="Widgets", frontmatter={"title": "Widgets", "tags": ["a", "b"]})  # fmt: skip
    put("manual.rst", "Manual\n======\n\nIntro text.\n\nTuning\n------\n\nSet the glockenspiel threshold "
        "low.\n\n.. toctree::\n\n   other\n", phrase="glockenspiel threshold", heading="Manual > Tuning",
        lines=(9, 10))  # fmt: skip
    put("site/index.html", walrus_page(), phrase="walrus herring", heading="Walrus Handbook > Feeding",
        title="Walrus Handbook")  # fmt: skip
    put("src/geometry.py", "import math\n\n\ndef area(r):\n    return math.pi * r * r\n\n\nclass Polygon:\n"
        "    def perimeter(self):\n        return 'the obsidian perimeter'\n", phrase="obsidian perimeter",
        lines=(9, 10), symbols=["area", "Polygon", "Polygon.perimeter"])  # fmt: skip
    put("src/app.ts", "export function greet(name: string): string {\n  return `hello ${name}`;\n}\n\n"
        "export class Kiosk {\n  open(): string {\n    return 'tangerine kiosk';\n  }\n}\n",
        phrase="tangerine kiosk", lines=(5, 9), symbols=["greet", "Kiosk", "Kiosk.open"])  # fmt: skip
    put("src/main.go", "package main\n\n// Lantern prints the saffron lantern.\nfunc Lantern() string {\n"
        "\treturn \"saffron lantern\"\n}\n", phrase="saffron lantern", symbols=["Lantern"])  # fmt: skip
    put("config/settings.yaml", "server:\n  port: 8080\n  motto: velvet turnip\n", phrase="velvet turnip",
        lines=(1, 3))  # fmt: skip
    put("report.pdf", tiny_pdf([["Cover page text."], ["The harpsichord inventory is on page two."]]),
        phrase="harpsichord inventory", page=2)  # fmt: skip
    put("analysis.ipynb", notebook_json("# Analysis\nThe pelican regression is robust.", "x = 1\nprint(x)",
        "OUTPUT-SHOULD-NOT-APPEAR"), phrase="pelican regression", heading="Analysis")  # fmt: skip
    put("memo.docx", docx_bytes("Budget", ["The tamarind budget was approved."]), phrase="tamarind budget",
        heading="Budget")  # fmt: skip
    put("deck.pptx", pptx_bytes("Roadmap", "The gondola milestone slips to June."), phrase="gondola milestone",
        heading="slide 1: Roadmap")  # fmt: skip
    put("Makefile", "build:\n\techo the periwinkle target\n", phrase="periwinkle target", lines=(1, 2))
    # unsupported and unreadable files
    put("images/a.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    put("images/b.png", b"\x89PNG\r\n\x1a\n\x00\x01")
    put("data.bin", b"\x00\x01\x02binary")
    put("fake.txt", b"text then \x00 a NUL byte")
    put("scan.pdf", tiny_pdf([[], []]))
    for rel in ("images/a.png", "images/b.png", "data.bin", "fake.txt", "scan.pdf"):
        expect.pop(rel)
    return expect
