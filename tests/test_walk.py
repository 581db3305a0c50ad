"""diver.text.walk: .gitignore/.ignore (nested, negation, git's precedence), default skips, include/exclude
globs, unsupported files counted per extension, symlinks confined; and read_documents through it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from diver.errors import InputError
from diver.text.ingest import read_documents
from diver.text.walk import FolderFilter, walk_folder

LIMIT = 100_000


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def walked(root: Path, rules: FolderFilter | None = None, supported: tuple[str, ...] = (".md", ".txt")) -> list[str]:
    result = walk_folder(root, [root], lambda rel: rel.endswith(supported), rules)
    return [rel for _, rel in result.files]


def test_gitignore_nested_negation_and_ignore_file(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {
        ".gitignore": "*.log.md\nbuild/\n/top-only.md\nsecret*\n",
        "keep.md": "k", "debug.log.md": "x", "top-only.md": "x", "build/out.md": "x",
        "secret-plan.md": "x",
        "docs/top-only.md": "kept: the pattern is anchored to the root",
        "docs/.gitignore": "!important.log.md\ndraft*.md\n",
        "docs/important.log.md": "re-included by the deeper file",
        "docs/other.log.md": "still ignored by the root file",
        "docs/draft-1.md": "x",
        "docs/sub/draft-2.md": "x (a deeper folder inherits docs/.gitignore)",
        "docs/sub/page.md": "p",
        "notes/.ignore": "private/\n",
        "notes/.gitignore": "!private/\n",  # .ignore wins over .gitignore in the same folder
        "notes/private/x.md": "x",
        "notes/public.md": "p",
    })  # fmt: skip
    assert walked(root) == [
        "keep.md", "docs/important.log.md", "docs/top-only.md", "docs/sub/page.md", "notes/public.md",
    ]  # fmt: skip


def test_a_file_under_an_ignored_folder_cannot_be_re_included(tmp_path: Path) -> None:
    """git's rule: nothing under an excluded folder is looked at."""
    root = tree(tmp_path / "repo", {".gitignore": "gen/\n!gen/keep.md\n", "gen/keep.md": "x", "a.md": "a"})
    assert walked(root) == ["a.md"]


def test_default_skips(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {
        "readme.md": "r", ".hidden.md": "x", ".github/workflows.md": "x", "node_modules/pkg/readme.md": "x",
        "src/__pycache__/m.md": "x", ".venv/lib/x.md": "x", ".git/HEAD.md": "x",
        "env/pyvenv.cfg": "home = /usr", "env/lib/site.md": "x (a virtualenv under any name)",
        "src/guide.md": "g",
    })  # fmt: skip
    assert walked(root) == ["readme.md", "src/guide.md"]


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {
        "a.md": "a", "b.txt": "b", "docs/c.md": "c", "docs/api/d.md": "d", "docs/api/e.txt": "e",
        "vendor/f.md": "f",
    })  # fmt: skip
    assert walked(root, FolderFilter.of(include=["*.md"])) == ["a.md", "docs/c.md", "docs/api/d.md", "vendor/f.md"]
    assert walked(root, FolderFilter.of(include=["docs/**"], exclude=["docs/api/*.txt"])) == ["docs/c.md", "docs/api/d.md"]
    assert walked(root, FolderFilter.of(exclude=["vendor/", "*.txt"])) == ["a.md", "docs/c.md", "docs/api/d.md"]
    with pytest.raises(InputError, match="include"):
        FolderFilter.of(include=[""])


def test_unsupported_files_are_counted_per_extension(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {"a.md": "a", "x.png": "", "y.png": "", "sub/z.PNG": "", "Makefile": "", "c.pdf": ""})
    result = walk_folder(root, [root], lambda rel: rel.endswith(".md"))
    assert dict(result.unsupported) == {".png": 3, "": 1, ".pdf": 1}
    assert result.unsupported_summary() == [
        "unsupported format .png: 3 files (x.png, y.png, sub/z.PNG)",
        "unsupported format (no extension): 1 file (Makefile)", "unsupported format .pdf: 1 file (c.pdf)",
    ]  # fmt: skip


def test_symlinks_confined_to_the_roots(tmp_path: Path) -> None:
    outside = tree(tmp_path / "outside", {"secret.md": "secret"})
    root = tree(tmp_path / "repo", {"a.md": "a"})
    os.symlink(outside / "secret.md", root / "link.md")
    os.symlink(root / "a.md", root / "alias.md")
    os.symlink(outside, root / "linkdir")  # a folder symlink is not followed at all
    result = walk_folder(root, [root], lambda rel: rel.endswith(".md"))
    assert [rel for _, rel in result.files] == ["a.md", "alias.md"]
    assert result.skipped == ["link.md: symlink points outside the allowed roots"]


def test_read_documents_walks_with_the_rules(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {
        ".gitignore": "drafts/\n", "drafts/d.md": "draft", "guide/a.md": "# A\nalpha", "guide/b.txt": "beta",
        "日本語/ノート.md": "unicode names work", "logo.svg": "<svg/>",
    })  # fmt: skip
    docs, skipped = read_documents(root, allowed_roots=[root], max_bytes=LIMIT, exclude=["*.txt"])
    assert [d.id for d in docs] == ["guide/a.md", "日本語/ノート.md"]
    assert skipped == ["unsupported format .svg: 1 file (logo.svg)"]
    docs, _ = read_documents(root, allowed_roots=[root], max_bytes=LIMIT, include=["guide/"])
    assert [d.id for d in docs] == ["guide/a.md", "guide/b.txt"]
