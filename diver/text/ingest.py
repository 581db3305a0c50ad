"""Reading documents from files: a folder (walked by ``diver.text.walk``), one supported file, or a .jsonl
of {id, text, metadata}.

Each file is turned into text by its format's parser (``diver.text.formats``: text, Markdown, reST, HTML,
code, PDF; notebooks and Office files with the ``formats`` extra); unsupported files are counted per
extension in the skips.

Used by the CLI (``diver index``) and the MCP server (``index_path``). Nothing here imports an adapter.
Paths can be confined to allowed roots: ``..`` is refused, the real path (symlinks resolved) must lie
under a root, and only regular files are read (no FIFOs, devices, /proc or /sys). Files that cannot be
read as text (binary, not UTF-8, too large) and broken .jsonl lines are skipped and reported, never fatal.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diver.errors import InputError, MissingDependency, PathNotAllowed
from diver.text.documents import Document, make_document
from diver.text.formats import FormatError, parse_file, supported
from diver.text.walk import FolderFilter, in_scope, walk_folder

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
"""The plain-text formats (kept for callers); ``diver.text.formats.SUPPORTED_SUFFIXES`` lists all."""
BINARY_FORMATS = frozenset({".pdf", ".docx", ".pptx", ".ipynb"})
"""Formats whose file is larger than its text: held to ``max_file_bytes`` instead of ``max_bytes``."""
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_FORBIDDEN_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))
MAX_REPORTED_SKIPS = 200


def _contains(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def confine_path(path: str | Path, allowed_roots: Sequence[Path] | None) -> Path:
    """The real path of ``path`` if it may be read, else ``PathNotAllowed``.

    ``allowed_roots=None`` means unconfined (the CLI); an empty list refuses everything. A relative
    path is taken relative to the first allowed root that contains it (or to the working directory
    when unconfined).
    """
    if not str(path).strip():  # before Path(): Path("") is "." and would read a whole root
        raise InputError("path is empty")
    raw = Path(path).expanduser() if isinstance(path, str) else path
    if "\x00" in str(raw):
        raise InputError("path contains NUL bytes")
    if ".." in raw.parts:
        raise PathNotAllowed(f"path {str(raw)!r} contains '..'; give a path inside an allowed root")
    if allowed_roots is not None:
        roots = [_real(Path(r).expanduser()) for r in allowed_roots]
        if not roots:
            raise PathNotAllowed(
                "reading files is disabled: no allowed roots are configured "
                "(set server.allowed_roots, e.g. DIVER_SERVER__ALLOWED_ROOTS='[\"/path/to/docs\"]')"
            )
        candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
        real = next((_real(c) for c in candidates if os.path.lexists(c)), _real(candidates[0]))
        if not any(_contains(root, real) for root in roots):
            shown = ", ".join(str(r) for r in roots)
            raise PathNotAllowed(
                f"path {str(raw)!r} is outside the allowed roots ({shown}); symlinks are resolved first"
            )
    else:
        real = _real(raw)
    if any(_contains(tree, real) for tree in _FORBIDDEN_TREES):
        raise PathNotAllowed(f"path {str(raw)!r} resolves to {real}, a system tree that is never read")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError as exc:
        raise InputError(f"path {str(raw)!r} does not exist") from exc
    except OSError as exc:
        raise InputError(f"path {str(raw)!r} cannot be read: {exc.strerror}") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise PathNotAllowed(f"path {str(raw)!r} is not a regular file or folder")
    return real


def read_documents(
    path: str | Path,
    *,
    allowed_roots: Sequence[Path] | None = None,
    max_bytes: int,
    max_metadata_bytes: int | None = None,
    max_documents: int | None = None,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    max_file_bytes: int | None = None,
) -> tuple[list[Document], list[str]]:
    """Documents from a folder of supported files (ids = relative paths), one such file, or a .jsonl.

    ``max_bytes`` caps a document's text (and a text file's size); ``max_file_bytes`` (default
    ``max_bytes``) caps a PDF, Office file or notebook on disk.

    A folder is walked by ``diver.text.walk`` (.gitignore/.ignore, default skips, ``include``/``exclude``
    globs). Returns (documents, skipped), each skip as ``"<where>: <reason>"``. Raises ``PathNotAllowed`` for
    a path outside ``allowed_roots`` and ``InputError`` for an unsupported file or too many documents.
    """
    real = confine_path(path, allowed_roots)
    skipped: list[str] = []
    documents: list[Document] = []
    confined = None if allowed_roots is None else [_real(Path(r).expanduser()) for r in allowed_roots]
    if real.is_dir():
        folder = read_folder(
            real, confined, max_bytes, max_documents, FolderFilter.of(include, exclude), max_file_bytes=max_file_bytes
        )
        documents, skipped = folder.documents, folder.skipped
    elif real.suffix.lower() in JSONL_SUFFIXES:
        documents = _read_jsonl(real, max_bytes, max_metadata_bytes, max_documents, skipped, confined)
    elif supported(real.name):
        doc = _read_text_file(real, real.name, max_bytes, skipped, confined, max_file_bytes)
        documents = [doc] if doc is not None else []
    else:
        raise InputError(
            f"unsupported file {real.name!r}: give a folder, a text/Markdown/reST/HTML/code/PDF file, or a "
            '.jsonl with one {"id", "text", "metadata"} object per line'
        )
    return documents, _cap(_count_unsupported(skipped))


_UNSUPPORTED = ": unsupported format "


def _count_unsupported(skipped: list[str]) -> list[str]:
    """One line per extension for unsupported files ("unsupported format .png: 3 files (a.png, ...)")."""
    counts: dict[str, list[str]] = {}
    kept: list[str] = []
    for line in skipped:
        where, sep, suffix = line.partition(_UNSUPPORTED)
        if sep:
            counts.setdefault(suffix, []).append(where)
        else:
            kept.append(line)
    for suffix, files in sorted(counts.items(), key=lambda item: (-len(item[1]), item[0])):
        shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
        kept.append(f"unsupported format {suffix}: {len(files)} file{'s' if len(files) > 1 else ''} ({shown})")
    return kept


@dataclass
class FolderRead:
    """What one read of a folder found: the documents (metadata ``path`` = relative path, ``root`` = the
    folder's real path), the relative paths of the files that could not be read, and the skips with
    reasons. ``scope``: the relative paths a partial read was limited to."""

    root: Path
    documents: list[Document] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)
    scope: frozenset[str] | None = None


def supported_file(rel: str) -> bool:
    """Whether a folder's file (relative path) is read as a document (``diver.text.formats`` has a parser)."""
    return supported(rel.rsplit("/", 1)[-1])


def read_folder(
    folder: Path,
    roots: Sequence[Path] | None,
    max_bytes: int,
    max_documents: int | None = None,
    rules: FolderFilter | None = None,
    scope: Collection[str] | None = None,
    max_file_bytes: int | None = None,
) -> FolderRead:
    """Read the supported files under ``folder`` (a real path, from ``confine_path``); with ``scope``, only
    those at or under these relative paths (the walk is the same, only the reading is limited)."""
    allowed = [folder] if roots is None else list(roots)
    out = FolderRead(root=folder, scope=None if scope is None else frozenset(scope))
    walked = walk_folder(folder, allowed, supported_file, rules, _contains_any)
    files = walked.files
    if out.scope is None:
        out.skipped = walked.skipped + walked.unsupported_summary()
    else:
        files = [(file, rel) for file, rel in files if in_scope(rel, out.scope)]
    for file, rel in files:
        doc = _read_text_file(file, rel, max_bytes, out.skipped, allowed, max_file_bytes)
        if doc is None:
            out.unreadable.add(rel)
            continue
        out.documents.append(doc.model_copy(update={"metadata": {**doc.metadata, "root": str(folder)}}))
        _check_count(len(out.documents), max_documents, folder)
    return out


def _contains_any(path: Path, roots: Sequence[Path]) -> bool:
    return any(_contains(root, path) for root in roots)


def _check_count(count: int, max_documents: int | None, path: str | Path) -> None:
    if max_documents is not None and count > max_documents:
        raise InputError(f"{str(path)!r} holds more than {max_documents} documents; index it in parts")


def _cap(skipped: list[str]) -> list[str]:
    if len(skipped) <= MAX_REPORTED_SKIPS:
        return skipped
    return skipped[:MAX_REPORTED_SKIPS] + [f"... and {len(skipped) - MAX_REPORTED_SKIPS} more skipped"]


def _open_confined(file: Path, roots: Sequence[Path] | None) -> int:
    """Open ``file`` read-only, then check where the opened descriptor really is.

    Checking a path and then opening it leaves a window in which a symlink (the file or any folder
    above it) can be swapped; the check that counts is on the opened file's own path (``/proc/self/fd``
    or ``F_GETPATH``): inside ``roots`` (None = unconfined) and outside the system trees.
    """
    fd = os.open(_real(file), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        opened = _descriptor_path(fd)
        if roots is not None and not any(_contains(root, opened) for root in roots):
            raise PathNotAllowed(f"{file.name!r} resolved to {opened} when opened: outside the allowed roots")
        if any(_contains(tree, opened) for tree in _FORBIDDEN_TREES):
            raise PathNotAllowed(f"{file.name!r} resolved to {opened} when opened: a system tree")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _descriptor_path(fd: int) -> Path:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        import fcntl

        if not hasattr(fcntl, "F_GETPATH"):
            raise OSError("cannot tell where an opened file lies (no /proc, no F_GETPATH)") from None
        raw = fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024))
        return Path(os.fsdecode(raw.split(b"\0", 1)[0]))


def _read_bytes(file: Path, max_bytes: int, roots: Sequence[Path] | None) -> bytes:
    """Read a regular file inside ``roots`` without following a symlink swap or blocking on a FIFO."""
    real = _real(file)
    if any(_contains(tree, real) for tree in _FORBIDDEN_TREES):
        raise OSError("is in a system tree")
    fd = _open_confined(real, roots)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError("is not a regular file")
        if info.st_size > max_bytes:
            raise OSError(f"is {info.st_size} bytes; the limit is {max_bytes} (limits.max_document_bytes)")
        return handle.read(max_bytes + 1)


def _read_text_file(
    file: Path,
    doc_id: str,
    max_bytes: int,
    skipped: list[str],
    roots: Sequence[Path] | None,
    max_file_bytes: int | None = None,
) -> Document | None:
    """One file through its format's parser; any failure is a skip with its reason, never an exception."""
    binary = file.suffix.lower() in BINARY_FORMATS
    limit = max(max_bytes, max_file_bytes or 0) if binary else max_bytes
    try:
        parsed = parse_file(file.name, _read_bytes(file, limit, roots))
        skipped.extend(f"{doc_id}: {note}" for note in parsed.notes)
        metadata = {"path": doc_id, **parsed.metadata}
        return make_document(doc_id, parsed.text, metadata, max_bytes=max_bytes, precleaned=True)
    except FormatError as exc:
        skipped.append(f"{doc_id}: {exc}")
    except OSError as exc:
        skipped.append(f"{doc_id}: {exc.strerror or exc}")
    except (InputError, MissingDependency) as exc:
        skipped.append(f"{doc_id}: {exc}")
    except RecursionError:
        skipped.append(f"{doc_id}: too deeply nested to parse")
    return None


def _read_jsonl(
    file: Path,
    max_bytes: int,
    max_metadata_bytes: int | None,
    max_documents: int | None,
    skipped: list[str],
    roots: Sequence[Path] | None,
) -> list[Document]:
    try:
        fd = _open_confined(file, roots)
    except OSError as exc:
        raise InputError(f"cannot open {file.name!r}: {exc.strerror or exc}") from exc
    documents: list[Document] = []
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise PathNotAllowed(f"{file.name!r} is not a regular file")
        line_limit = max_bytes + (max_metadata_bytes or 0) + 1024
        for number, raw in enumerate(_bounded_lines(handle, line_limit), start=1):
            if isinstance(raw, int):  # an over-long line: measured in pieces, never held whole
                skipped.append(f"{file.name} line {number}: line is {raw} bytes, over the document limit "
                               f"of {max_bytes}")  # fmt: skip
                continue
            if not raw.strip():
                continue
            try:
                doc = _jsonl_document(raw, max_bytes, max_metadata_bytes)
            except (UnicodeError, ValueError, InputError) as exc:
                skipped.append(f"{file.name} line {number}: {exc}")
                continue
            documents.append(doc)
            _check_count(len(documents), max_documents, file.name)
    return documents


def _bounded_lines(handle: Any, limit: int) -> Iterator[bytes | int]:
    """Each line of ``handle`` as bytes, or, for a line longer than ``limit`` bytes, its length."""
    while line := handle.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while line and not line.endswith(b"\n"):
            line = handle.readline(1 << 20)
            size += len(line)
        yield size


def _jsonl_document(raw: bytes, max_bytes: int, max_metadata_bytes: int | None) -> Document:
    if len(raw) > max_bytes + (max_metadata_bytes or 0) + 1024:
        raise InputError(f"line is {len(raw)} bytes, over the document limit of {max_bytes}")
    try:
        line = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnicodeError(f"not UTF-8 (invalid byte at offset {exc.start})") from exc
    try:
        record: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    unknown = set(record) - {"id", "text", "metadata"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; expected id, text and optional metadata")
    for key in ("id", "text"):
        if key not in record:
            raise ValueError(f"missing {key!r}")
    doc_id, metadata = record["id"], record.get("metadata") or {}
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
        raise ValueError(f"'id' must be a string or integer, got {type(doc_id).__name__}")
    if not isinstance(metadata, dict):
        raise ValueError(f"'metadata' must be an object, got {type(metadata).__name__}")
    if max_metadata_bytes is not None:
        size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        if size > max_metadata_bytes:
            raise ValueError(f"metadata is {size} bytes; the limit is {max_metadata_bytes}")
    return make_document(str(doc_id), record["text"], metadata, max_bytes=max_bytes)
