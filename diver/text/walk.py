"""Walking a folder as a developer expects: which files of a tree are read, and which are left out.

- ``.gitignore`` and ``.ignore`` files are respected, nested ones too, with git's rules (``pathspec``'s
  ``GitIgnoreSpec``): a deeper file's patterns win over a shallower one's, ``.ignore`` over ``.gitignore``
  in the same folder, ``!pattern`` re-includes, and nothing under an ignored folder is looked at.
- Hidden files and folders (a name starting with ``.``), ``node_modules``, ``__pycache__`` and virtual
  environments (a folder holding ``pyvenv.cfg``, whatever its name) are skipped.
- ``include`` globs (gitignore syntax, relative to the folder): when given, only matching files are read;
  ``exclude`` globs: matching files and folders are left out.
- Symbolic links to folders are not followed; a symbolic link to a file is read only when its target lies
  under an allowed root.

Files of a type the reader does not support are counted per extension, not listed one by one.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from diver.errors import InputError

IGNORE_FILES = (".gitignore", ".ignore")
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__"})
VENV_MARKER = "pyvenv.cfg"
MAX_GLOBS = 100


def _spec(lines: Iterable[str], what: str) -> pathspec.GitIgnoreSpec:
    try:
        return pathspec.GitIgnoreSpec.from_lines(list(lines))
    except (ValueError, TypeError) as exc:  # pathspec raises GitWildMatchPatternError (a ValueError)
        raise InputError(f"{what}: {exc}") from exc


def _globs(globs: Sequence[str] | None, what: str) -> pathspec.GitIgnoreSpec | None:
    if not globs:
        return None
    if isinstance(globs, str) or len(globs) > MAX_GLOBS:
        raise InputError(f"{what} must be a list of at most {MAX_GLOBS} glob patterns")
    for glob in globs:
        if not isinstance(glob, str) or not glob.strip() or "\x00" in glob:
            raise InputError(f"{what}: {glob!r} is not a glob pattern")
    return _spec(globs, what)


@dataclass(frozen=True)
class FolderFilter:
    """Which relative paths (posix, from the walked folder) are read: include/exclude globs and the
    default skips. Ignore files are per folder and applied by ``walk_folder`` (or ``ignored_by_files``)."""

    include: pathspec.GitIgnoreSpec | None = None
    exclude: pathspec.GitIgnoreSpec | None = None

    @classmethod
    def of(cls, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None) -> FolderFilter:
        return cls(_globs(include, "include"), _globs(exclude, "exclude"))

    def skips_folder(self, rel: str, path: Path) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(".") or name in SKIPPED_FOLDERS or (path / VENV_MARKER).exists():
            return True
        return self.exclude is not None and self.exclude.match_file(rel + "/")

    def skips_file(self, rel: str) -> bool:
        if any(part.startswith(".") for part in rel.split("/")):
            return True
        if self.exclude is not None and self.exclude.match_file(rel):
            return True
        return self.include is not None and not self.include.match_file(rel)


@dataclass
class WalkResult:
    """Files to read (sorted, with their relative posix paths), what was left out and why."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # extension -> the first few relative paths
    ignored: int = 0
    skipped: list[str] = field(default_factory=list)

    def unsupported_summary(self) -> list[str]:
        """One line per extension, most frequent first:
        ``"unsupported format .png: 3 files (a.png, b.png, c.png)"`` (at most 3 paths shown, then ``...``)."""
        lines = []
        for ext, count in sorted(self.unsupported.items(), key=lambda item: (-item[1], item[0])):
            shown = ", ".join(self.examples.get(ext, [])) + (", ..." if count > 3 else "")
            lines.append(f"unsupported format {ext or '(no extension)'}: {count} file{'s' * (count != 1)} ({shown})")
        return lines


def extension(rel: str) -> str:
    """The lower-case extension of a relative path (``""`` for none), as counted in skipped summaries."""
    return os.path.splitext(rel.rsplit("/", 1)[-1])[1].lower()


class _IgnoreStack:
    """The ignore-file specs of the folders from the walked root down to the current one."""

    def __init__(self) -> None:
        self.specs: dict[str, pathspec.GitIgnoreSpec] = {}

    def load(self, folder: Path, rel: str, skipped: list[str]) -> None:
        lines: list[str] = []
        for name in IGNORE_FILES:
            path = folder / name
            if not path.is_file() or path.is_symlink():
                continue
            try:
                lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
            except OSError as exc:
                skipped.append(f"{_join(rel, name)}: cannot read ({exc.strerror or exc})")
        if lines:
            try:
                self.specs[rel] = _spec(lines, _join(rel, ".gitignore"))
            except InputError as exc:
                skipped.append(f"{exc} (ignore file not applied)")

    def ignores(self, rel: str, is_dir: bool) -> bool:
        """git's rule: the deepest ignore file with a matching pattern decides."""
        parts = rel.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            base = "/".join(parts[:depth])
            spec = self.specs.get(base)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            decided = spec.check_file(sub).include
            if decided is not None:
                return bool(decided)
        return False


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def walk_folder(
    folder: Path,
    roots: Sequence[Path],
    supported: Callable[[str], bool],
    rules: FolderFilter | None = None,
    inside: Callable[[Path, Sequence[Path]], bool] | None = None,
) -> WalkResult:
    """The files under ``folder`` (real path) to read, in sorted order.

    ``supported(rel)`` says whether the reader handles a file (others are counted per extension);
    ``inside(target, roots)`` whether a symlink's real target may be read (default: under one of ``roots``).
    """
    rules = rules or FolderFilter()
    inside = inside or _under_any
    result = WalkResult()
    ignores = _IgnoreStack()
    for current, dirs, files in os.walk(folder, followlinks=False):
        base = Path(current)
        rel_dir = "" if base == folder else base.relative_to(folder).as_posix()
        ignores.load(base, rel_dir, result.skipped)
        kept = []
        for name in sorted(dirs):
            rel = _join(rel_dir, name)
            if rules.skips_folder(rel, base / name) or ignores.ignores(rel, True):
                result.ignored += 1
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            rel = _join(rel_dir, name)
            if rules.skips_file(rel) or ignores.ignores(rel, False):
                result.ignored += 1
            elif not supported(rel):
                result.unsupported[extension(rel)] += 1
                shown = result.examples.setdefault(extension(rel), [])
                if len(shown) < 3:
                    shown.append(rel)
            elif (base / name).is_symlink() and not inside(Path(os.path.realpath(base / name)), roots):
                result.skipped.append(f"{rel}: symlink points outside the allowed roots")
            else:
                result.files.append((base / name, rel))
    return result


def _under_any(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def never_walked(rel: str) -> bool:
    """``rel`` lies in a hidden or default-skipped place whatever the rules (a watcher drops such changes)."""
    return any(part.startswith(".") or part in SKIPPED_FOLDERS for part in rel.split("/"))


def in_scope(rel: str, scope: frozenset[str]) -> bool:
    """``rel`` or one of its folders is in ``scope`` (a deleted folder arrives as one changed path)."""
    parts = rel.split("/")
    return any("/".join(parts[:depth]) in scope for depth in range(1, len(parts) + 1))
