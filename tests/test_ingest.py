"""diver.text.ingest: folders, .jsonl, skips with reasons, and path confinement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from diver.errors import InputError, PathNotAllowed
from diver.text.ingest import confine_path, read_documents

LIMIT = 100_000


@pytest.fixture
def root(tmp_path: Path) -> Path:
    docs = tmp_path / "root"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("Alpha theorem\nbody of a", encoding="utf-8")
    (docs / "sub" / "b.md").write_text("# Beta\ncontent", encoding="utf-8")
    (docs / ".hidden.txt").write_text("never read", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG\r\n")
    (docs / "binary.txt").write_bytes(b"abc\x00def")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (docs / "empty.md").write_text("   \n", encoding="utf-8")
    return docs


def test_folder_reads_text_files_and_reports_skips(root: Path) -> None:
    docs, skipped = read_documents(root, allowed_roots=[root], max_bytes=LIMIT)
    assert [d.id for d in docs] == ["a.txt", "sub/b.md"]
    assert docs[0].text.startswith("Alpha theorem") and docs[0].metadata == {"path": "a.txt", "root": str(root)}
    joined = "\n".join(skipped)
    assert "binary.txt: binary file" in joined
    assert "latin1.txt: not UTF-8" in joined
    assert "empty.md:" in joined and "empty" in joined
    assert "unsupported format .png: 1 file (image.png)" in joined
    assert ".hidden" not in joined


def test_too_large_file_is_skipped(root: Path) -> None:
    (root / "big.txt").write_text("x" * 500, encoding="utf-8")
    docs, skipped = read_documents(root, allowed_roots=[root], max_bytes=100)
    assert "big.txt" not in [d.id for d in docs]
    assert any(s.startswith("big.txt:") and "limit is 100" in s for s in skipped)


def test_single_text_file_and_relative_path(root: Path) -> None:
    docs, _ = read_documents("sub/b.md", allowed_roots=[root], max_bytes=LIMIT)
    assert [d.id for d in docs] == ["b.md"]


def test_jsonl_reports_broken_lines_with_numbers(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"id": "d1", "text": "first", "metadata": {"lang": "en"}}),
        "{not json",
        "",
        json.dumps(["a list"]),
        json.dumps({"id": "d2"}),
        json.dumps({"id": 7, "text": "seventh"}),
        json.dumps({"id": "d3", "text": "x", "metadata": "bad"}),
        json.dumps({"id": "d4", "text": "x", "extra": 1}),
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    docs, skipped = read_documents(path, allowed_roots=[tmp_path], max_bytes=LIMIT)
    assert [(d.id, d.metadata) for d in docs] == [("d1", {"lang": "en"}), ("7", {})]
    assert [s.split(":")[0] for s in skipped] == [
        "docs.jsonl line 2",
        "docs.jsonl line 4",
        "docs.jsonl line 5",
        "docs.jsonl line 7",
        "docs.jsonl line 8",
        "docs.jsonl line 9",
    ]
    assert "invalid JSON" in skipped[0] and "missing 'text'" in skipped[2] and "UTF-8" in skipped[5]


def test_max_documents_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(i), "text": "t"}) for i in range(5)), encoding="utf-8")
    with pytest.raises(InputError, match="more than 3 documents"):
        read_documents(path, allowed_roots=None, max_bytes=LIMIT, max_documents=3)


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="unsupported file"):
        read_documents(tmp_path / "x.png", allowed_roots=[tmp_path], max_bytes=LIMIT)
    (tmp_path / "x.pdf").write_bytes(b"%PDF")  # a supported format that does not parse: skipped, not fatal
    docs, skipped = read_documents(tmp_path / "x.pdf", allowed_roots=[tmp_path], max_bytes=LIMIT)
    assert docs == [] and skipped[0].startswith("x.pdf: ")


# -- confinement ------------------------------------------------------------------------------------
def test_refuses_dotdot_outside_and_no_roots(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    with pytest.raises(PathNotAllowed, match=r"'\.\.'"):
        confine_path(root / ".." / "secret.txt", [root])
    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        confine_path(tmp_path / "secret.txt", [root])
    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        confine_path("/etc/passwd", [root])
    with pytest.raises(PathNotAllowed, match="no allowed roots"):
        confine_path(root / "a.txt", [])


def test_refuses_symlinks_pointing_out(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "linkdir")
    with pytest.raises(PathNotAllowed, match="outside"):
        confine_path(root / "link.txt", [root])
    with pytest.raises(PathNotAllowed, match="outside"):
        confine_path(root / "linkdir" / "secret.txt", [root])
    docs, skipped = read_documents(root, allowed_roots=[root], max_bytes=LIMIT)
    assert "link.txt" not in [d.id for d in docs]
    assert any(s.startswith("link.txt: symlink points outside") for s in skipped)


def test_symlink_inside_root_is_followed(root: Path) -> None:
    os.symlink(root / "a.txt", root / "alias.txt")
    docs, _ = read_documents(root, allowed_roots=[root], max_bytes=LIMIT)
    assert "alias.txt" in [d.id for d in docs]


def test_refuses_proc_devices_and_fifos(root: Path) -> None:
    with pytest.raises(PathNotAllowed, match="system tree"):
        confine_path("/proc/self/environ", [Path("/")])
    with pytest.raises(PathNotAllowed, match="system tree"):
        confine_path("/dev/zero", [Path("/")])
    fifo = root / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(PathNotAllowed, match="not a regular file"):
        confine_path(fifo, [root])
    docs, skipped = read_documents(root, allowed_roots=[root], max_bytes=LIMIT)  # must not block
    assert any(s.startswith("pipe.txt:") and "regular file" in s for s in skipped)


def test_missing_path_and_unconfined_cli_use(root: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        confine_path(root / "nope.txt", [root])
    docs, _ = read_documents(root / "a.txt", allowed_roots=None, max_bytes=LIMIT)
    assert docs[0].id == "a.txt"


def _swap_folder_on_open(monkeypatch, folder: Path, outside: Path, target: str) -> None:
    """Between the path checks and the open of ``target``, replace ``folder`` with a symlink to ``outside``."""
    real_open = os.open

    def swapping_open(path, flags, *args, **kwargs):
        if str(path).endswith(target) and not folder.is_symlink():
            folder.rename(folder.with_name(folder.name + "-moved"))
            os.symlink(outside, folder)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swapping_open)


@pytest.mark.parametrize("what", ["folder", "file", "jsonl"])
def test_a_symlink_swapped_between_check_and_open_is_refused(
    root: Path, tmp_path: Path, monkeypatch, what
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.md").write_text("SECRET outside the root", encoding="utf-8")
    (outside / "c.jsonl").write_text('{"id": "x", "text": "SECRET outside the root"}\n', encoding="utf-8")
    (root / "sub" / "c.jsonl").write_text('{"id": "x", "text": "inside"}\n', encoding="utf-8")
    target = {"folder": "b.md", "file": "b.md", "jsonl": "c.jsonl"}[what]
    _swap_folder_on_open(monkeypatch, root / "sub", outside, f"sub/{target}")
    path = root if what == "folder" else root / "sub" / target
    try:
        docs, skipped = read_documents(path, allowed_roots=[root], max_bytes=LIMIT)
    except PathNotAllowed as exc:
        assert what == "jsonl" and "outside the allowed roots" in str(exc)
        return
    assert what != "jsonl", "the swapped .jsonl was read"
    assert not any("SECRET" in d.text for d in docs)
    assert any("outside the allowed roots" in s for s in skipped), skipped


def test_an_over_long_jsonl_line_is_skipped_without_reading_it_whole(tmp_path: Path) -> None:
    """Issue 21 item 8: a 40 MB single-line .jsonl (limit 1 MB) is measured in pieces (it was read whole:
    a 200 MB line took 437 MB RSS); the lines around it still count."""
    import tracemalloc

    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"id": "a", "text": "first"}\n')
        handle.write(b'{"id": "huge", "text": "' + b"x" * (40 << 20) + b'"}\n')
        handle.write(b'{"id": "b", "text": "last"}')  # no trailing newline
    tracemalloc.start()
    try:
        docs, skipped = read_documents(path, max_bytes=1_000_000, max_metadata_bytes=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.id for d in docs] == ["a", "b"]
    assert skipped == [f"big.jsonl line 2: line is {(40 << 20) + 27} bytes, over the document limit of 1000000"]
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
