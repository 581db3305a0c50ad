"""GPU probe (issue 6): our pipelined encode vs plain ``SentenceTransformer.encode``, and exact top-10 on GPU.

Runs on a lent H100/H200 in under 5 minutes with no network, from the fp16 MiniLM carried in ``.gpu/``
(``python -m benchmarks.prepare_gpu_bundle`` first)::

    python benchmarks/gpu_probe.py --model .gpu/minilm-fp16          # on the GPU machine
    python benchmarks/gpu_probe.py --tiny                            # CPU fallback check, seconds

Both encoders run in the same process on the same device, on the same synthetic ~200-word documents
(vocabulary from the offline TheoremQA / BRIGHT text), each warmed first. Prints a table and writes
``$OUT/gpu_probe.json`` when ``OUT`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = "1000,10000,50000"
sys.path.insert(0, str(ROOT))


def _sync(torch) -> None:  # noqa: ANN001
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def encode_rates(model_path: str, sizes: list[int], device: str, batch: int, workers: int = 0) -> list[dict]:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from benchmarks.corpus import SyntheticCorpus
    from diver.config import EmbeddingSettings
    from diver.index.dense.embedders import SentenceTransformerEmbedder

    dtype = "float16" if device == "cuda" else "float32"
    ours = SentenceTransformerEmbedder(
        EmbeddingSettings(
            model=model_path, device=device, dtype=dtype, batch_size=batch, cache=False, tokenizer_workers=workers
        )
    )
    if device != "cuda":
        ours.model.float()  # the carried weights are fp16; fp16 on CPU is ~5x slower
    plain = SentenceTransformer(
        model_path, device=device, model_kwargs={"torch_dtype": getattr(torch, dtype)}
    )
    corpus = SyntheticCorpus(max(sizes), batch=min(10_000, max(sizes)))
    texts_all = [t for b in corpus.batches() for t in b]
    warm = texts_all[: min(512, len(texts_all))]
    plain.encode(warm, batch_size=256, normalize_embeddings=True)
    ours.encode_pipelined(warm) if device == "cuda" else ours.embed_documents(warm)
    rows = []
    for size in sizes:
        texts = texts_all[:size]
        _sync(torch)
        t = time.perf_counter()
        a = plain.encode(texts, batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
        _sync(torch)
        plain_s = time.perf_counter() - t
        t = time.perf_counter()
        b = ours.encode_pipelined(texts) if device == "cuda" else ours.embed_documents(texts)
        _sync(torch)
        ours_s = time.perf_counter() - t
        cosine = float(np.min(np.sum(np.asarray(a, np.float32) * b, axis=1)))
        rows.append(
            {
                "docs": size,
                "plain_docs_per_s": round(size / plain_s, 1),
                "ours_docs_per_s": round(size / ours_s, 1),
                "ratio": round(plain_s / ours_s, 2),
                "min_cosine_ours_vs_plain": round(cosine, 5),
            }
        )
        print(
            f"encode {size:>6} docs: plain {rows[-1]['plain_docs_per_s']:>9} docs/s | ours "
            f"{rows[-1]['ours_docs_per_s']:>9} docs/s | x{rows[-1]['ratio']} | min cos {cosine:.5f}",
            flush=True,
        )
    return rows


def exact_search(vectors: int, device: str, dim: int = 384) -> dict:
    import torch

    dtype = torch.float16 if device == "cuda" else torch.float32
    g = torch.Generator(device=device).manual_seed(13)
    centres = torch.nn.functional.normalize(torch.randn(1000, dim, device=device, generator=g), dim=1)
    assign = torch.randint(0, 1000, (vectors,), device=device, generator=g)
    matrix = centres[assign] + torch.randn(vectors, dim, device=device, generator=g) / dim**0.5
    matrix = torch.nn.functional.normalize(matrix, dim=1).to(dtype)
    queries = torch.nn.functional.normalize(torch.randn(200, dim, device=device, generator=g), dim=1).to(
        dtype
    )
    for _ in range(3):
        torch.topk(matrix @ queries[0], 10)
    _sync(torch)
    t = time.perf_counter()
    for q in queries[:100]:
        torch.topk(matrix @ q, 10).indices.cpu()
    one = (time.perf_counter() - t) * 1000 / 100
    t = time.perf_counter()
    for s in (0, 100):
        torch.topk(queries[s : s + 100] @ matrix.T, 10, dim=1).indices.cpu()
    batch = (time.perf_counter() - t) * 1000 / 200
    out = {
        "vectors": vectors,
        "dtype": str(dtype),
        "one_query_ms": round(one, 4),
        "batch100_ms_per_query": round(batch, 4),
    }
    print(
        f"exact top-10 over {vectors:,} x {dim} {dtype}: one query {one:.3f} ms | batches of 100: {batch:.4f} ms/query"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(ROOT / ".gpu" / "minilm-fp16"))
    parser.add_argument("--sizes", default=DEFAULT_SIZES)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1024, help="our GPU batch (length-sorted)")
    parser.add_argument("--workers", type=int, default=0, help="tokenizer threads (0: the embedder's default)")
    parser.add_argument("--tiny", action="store_true", help="CPU fallback check: 16/32 docs, 5k vectors")
    parser.add_argument("--pipeline", type=int, default=0, help="issue 24: docs through the pipelined write path")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    sizes = (
        [int(s) for s in args.sizes.split(",")] if not args.tiny or args.sizes != DEFAULT_SIZES else [16, 32]
    )
    vectors = 5000 if args.tiny else args.vectors
    model = args.model
    if not Path(model).exists():
        from diver.config import DEFAULT_EMBEDDING_MODEL
        from diver.index.dense.embedders import resolve_model_path

        print(f"{model} missing: using the offline fp32 MiniLM", flush=True)
        model = resolve_model_path(DEFAULT_EMBEDDING_MODEL)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, model {model}", flush=True)
    started = time.perf_counter()
    result = {
        "device": name,
        "torch": torch.__version__,
        "tokenizer_workers": args.workers,
        "encode": encode_rates(model, sizes, device, args.batch, args.workers),
    }
    result["exact"] = exact_search(vectors, device) if vectors else None
    if args.pipeline:
        from benchmarks.gpu_pipeline_probe import run as pipeline_run

        result["pipeline"] = pipeline_run(model, args.pipeline, device=device)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print("\n| docs | plain encode docs/s | ours docs/s | ratio | min cosine |\n|---|---|---|---|---|")
    for row in result["encode"]:
        print(
            f"| {row['docs']} | {row['plain_docs_per_s']} | {row['ours_docs_per_s']} | {row['ratio']}x | {row['min_cosine_ours_vs_plain']} |"
        )
    e = result["exact"] or {"vectors": 0, "one_query_ms": None, "batch100_ms_per_query": None}
    print(
        f"\nexact top-10 over {e['vectors']:,}: {e['one_query_ms']} ms/query one at a time, "
        f"{e['batch100_ms_per_query']} ms/query in batches of 100 ({result['seconds']} s total)"
    )
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_probe.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
