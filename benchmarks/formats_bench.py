"""Files per second by format (issue 23): parsing alone, then a whole folder indexed end to end.

    .venv/bin/python -m benchmarks.formats_bench --assemble /tmp/doctree   # build the mixed tree, then run
    .venv/bin/python -m benchmarks.formats_bench --tree ~/my-docs           # any folder
    ... --embedder minilm                                                   # the real model (default: hashing)

``--assemble`` copies a mixed documentation tree from what this machine has on disk (each source taken if
present, a few hundred files in all): CMake's reST manual (/usr/share/cmake-*/Help/{command,manual}), the
HTML docs under /usr/share/doc, and the llama-cpp-python 0.3.36 sdist from uv's cache (its Markdown docs,
notebooks, Python package, llama.cpp's docs with a PDF, its web UI's MDX/TypeScript/Svelte and C++ sources).

Section 1 parses each file (``diver.text.formats.parse_file``) and prints files/s and MB/s per extension.
Section 2 runs ``read_documents`` + ``Collection.upsert`` on the whole tree (chunking, embedding, SQLite,
vector store, BM25) and prints files/s end to end. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

SOURCES: list[tuple[str, int]] = [
    ("/usr/share/cmake-*/Help/command/*.rst", 80),
    ("/usr/share/cmake-*/Help/manual/*.rst", 30),
    ("/usr/share/doc/*/html/*.html", 120),
    ("/usr/share/doc/*/*.html", 20),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/docs/**/*.md", 30),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/examples/**/*.ipynb", 10),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/llama_cpp/**/*.py", 30),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/docs/**/*.md", 50),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/docs/**/*.pdf", 3),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/tools/ui/**/*.mdx", 5),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/tools/ui/**/*.pdf", 2),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/tools/ui/src/**/*.ts", 40),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/tools/ui/src/**/*.svelte", 20),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/src/*.cpp", 40),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/src/*.h", 20),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/**/*.json", 10),
    ("/root/.cache/uv/sdists-v*/pypi/llama-cpp-python/*/*/src/vendor/llama.cpp/**/*.gguf", 5),
]


def assemble(dest: Path) -> int:
    """Copy up to N files of each source glob into ``dest`` (one sdist copy only); returns the count."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = 0
    for pattern, limit in SOURCES:
        paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if "sdists" in pattern and paths:
            first = paths[0].split("/src/")[0]
            paths = [p for p in paths if p.startswith(first + "/")]
        for path in paths[:limit]:
            rel = path.split("/src/", 1)[1] if "/src/" in path else path.lstrip("/")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += 1
    return copied


def parse_rates(tree: Path) -> None:
    from diver.text.formats import FormatError, parse_file, supported

    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        suffix = path.suffix.lower() or "(none)"
        if not supported(path.name):
            stats[suffix][3] += 1
            continue
        data = path.read_bytes()
        started = time.perf_counter()
        try:
            parse_file(path.name, data)
        except FormatError:
            stats[suffix][3] += 1
        row = stats[suffix]
        row[0] += 1
        row[1] += len(data) / 1e6
        row[2] += time.perf_counter() - started
    print(f"{'format':<10}{'files':>7}{'skipped':>9}{'MB':>8}{'seconds':>9}{'files/s':>9}{'MB/s':>8}")
    for suffix, (files, mb, seconds, skipped) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        rate = f"{files / seconds:9.1f}{mb / seconds:8.2f}" if seconds else f"{'-':>9}{'-':>8}"
        print(f"{suffix:<10}{int(files):>7}{int(skipped):>9}{mb:8.2f}{seconds:9.2f}{rate}")


def end_to_end(tree: Path, embedder: str) -> None:
    from diver.config import load_settings
    from diver.service import open_engine
    from diver.text.ingest import read_documents

    embedding = {"provider": "hashing"} if embedder == "hashing" else {"cache": False}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), embedding=embedding, llm={"cache": False})
        started = time.perf_counter()
        documents, skipped = read_documents(tree, max_bytes=settings.limits.max_document_bytes,
                                            max_file_bytes=settings.limits.max_file_bytes)  # fmt: skip
        read_s = time.perf_counter() - started
        with open_engine(settings) as engine:
            report = engine.collection("bench", create=True).upsert(documents)
        total_s = time.perf_counter() - started
    files = sum(1 for p in tree.rglob("*") if p.is_file())
    print(f"end to end ({embedder}): {files} files, {len(documents)} indexed, {report.chunks} chunks; "
          f"read+parse {read_s:.1f}s, total {total_s:.1f}s = {files / total_s:.1f} files/s "
          f"({len(documents) / total_s:.1f} indexed files/s)")  # fmt: skip
    for line in skipped[:12]:
        print(f"  skipped {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="an existing folder to measure")
    parser.add_argument("--assemble", type=Path, help="build the mixed tree here first, then measure it")
    parser.add_argument("--embedder", choices=["hashing", "minilm"], default="hashing")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tree = args.tree
    if args.assemble is not None:
        print(f"assembled {assemble(args.assemble)} files into {args.assemble}")
        tree = args.assemble
    if tree is None:
        parser.error("give --tree or --assemble")
    parse_rates(tree)
    end_to_end(tree, args.embedder)


if __name__ == "__main__":
    main()
