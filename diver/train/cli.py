"""``diver finetune``, ``diver reindex`` and ``diver synth``. ``diver/cli.py`` calls :func:`register`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from diver.config import DEFAULT_EMBEDDING_MODEL, DiverSettings, load_settings
from diver.errors import DiverError, InputError, LLMUnavailable, require_extra
from diver.service.cli_common import JsonOpt, fail


def _in_process_engine(settings: DiverSettings) -> Any:
    """An in-process Engine (not the shared engine process): fine-tuning reads and re-embeds the collection here."""
    from diver.service import local_engine

    return local_engine(settings)


def run_finetune(settings: DiverSettings, pairs_path: Path, collection: str, config: Any,
                 dev_path: Path | None = None, dev_fraction: float = 0.1, mine: bool = True,
                 mine_k: int = 30, fn_margin: float = 0.1) -> Any:  # fmt: skip
    """Pairs -> (dev split) -> hard negatives mined with the configured retriever -> ``finetune``."""
    from diver.train.data import collection_corpus
    from diver.train.mining import mine_hard_negatives
    from diver.train.pairs import load_pairs, pairs_hash
    from diver.train.splits import split_by_group
    from diver.train.trainer import finetune

    pairs = load_pairs(pairs_path)
    if dev_path is not None:
        train, dev = pairs, load_pairs(dev_path)
    elif dev_fraction > 0:
        if not 0 < dev_fraction < 1:
            raise InputError(f"--dev-fraction must be in [0, 1), got {dev_fraction}")
        folds = split_by_group(pairs, (1 - dev_fraction, dev_fraction, 0.0), seed=config.seed)
        train, dev = folds["train"] + folds["test"], folds["dev"]
    else:
        train, dev = pairs, []
    with _in_process_engine(settings) as engine:
        col = engine.collection(collection)
        corpus = collection_corpus(col)
        mining: dict[str, Any] = {}
        if mine and config.n_negatives > 0:
            train, report = mine_hard_negatives(col, train, config.n_negatives, k=mine_k, margin=fn_margin)
            mining = {**report.as_dict(), "k": mine_k, "margin": fn_margin, "mode": "hybrid",
                      "retriever": settings.embedding.model}  # fmt: skip
    extra = {"collection": collection, "pairs_file": str(pairs_path), "pairs_hash": pairs_hash(pairs),
             "mining": mining}  # fmt: skip
    return finetune(train, corpus, config, dev=dev, extra_manifest=extra)


# Over 60 lines: the typer commands are declared inside (each one is its own short function).
def register(app: typer.Typer) -> None:
    """Add ``finetune``, ``reindex`` and ``synth`` to ``app``."""

    # Over 60 lines: most of it is the typer option declarations of the command's signature.
    @app.command()
    def finetune(
        pairs: Annotated[
            Path, typer.Argument(help="jsonl: {query, positive_id | positive_text, negative_ids?}.")
        ],
        collection: Annotated[
            str, typer.Option("--collection", "-c", help="Collection holding the documents.")
        ],
        output: Annotated[Path, typer.Option("--output", "-o", help="Output model folder.")],
        base_model: Annotated[
            str, typer.Option(help="Model to fine-tune (id or folder).")
        ] = DEFAULT_EMBEDDING_MODEL,
        dev: Annotated[Path | None, typer.Option(help="Dev pairs jsonl (default: a split of PAIRS).")] = None,
        dev_fraction: Annotated[float, typer.Option(help="Share of positives held out for dev.")] = 0.1,
        epochs: Annotated[float, typer.Option()] = 1.0,
        max_steps: Annotated[int, typer.Option(help="> 0 overrides --epochs.")] = -1,
        batch_size: Annotated[int, typer.Option()] = 32,
        lr: Annotated[float, typer.Option("--lr")] = 2e-5,
        temperature: Annotated[float, typer.Option(help="InfoNCE temperature (scale = 1/T).")] = 0.1,
        negatives: Annotated[int, typer.Option(help="Hard negatives per query (0: in-batch only).")] = 1,
        mine: Annotated[bool, typer.Option(help="Mine hard negatives with the configured retriever.")] = True,
        mine_k: Annotated[int, typer.Option(help="Hybrid top-k searched for negatives.")] = 30,
        fn_margin: Annotated[float, typer.Option(help="Skip candidates within this of the positive.")] = 0.1,
        cached: Annotated[bool, typer.Option(help="Cached (GradCache) loss for large batches.")] = False,
        mini_batch_size: Annotated[int, typer.Option()] = 16,
        max_seq_length: Annotated[int, typer.Option()] = 128,
        query_prefix: Annotated[str, typer.Option(help="e.g. 'Instruct: ...\\nQuery:' for Qwen3.")] = "",
        document_prefix: Annotated[str, typer.Option()] = "",
        eval_steps: Annotated[int, typer.Option(help="Dev evaluation and checkpoint every N steps.")] = 50,
        seed: Annotated[int, typer.Option()] = 0,
        precision: Annotated[str, typer.Option(help="auto, fp32, fp16 or bf16 (half needs CUDA).")] = "auto",
        lora: Annotated[bool, typer.Option(help="Train LoRA adapters (peft), merged at the end.")] = False,
        lora_r: Annotated[int, typer.Option()] = 16,
        resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint in OUTPUT.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Fine-tune the embedding model (InfoNCE, in-batch + mined hard negatives) into a model folder."""
        from diver.train.trainer import FinetuneConfig

        try:
            require_extra("train", "diver finetune")
        except DiverError as exc:
            fail(exc)

        if precision not in ("auto", "fp32", "fp16", "bf16"):
            fail(InputError(f"--precision must be auto, fp32, fp16 or bf16, got {precision!r}"))
        config = FinetuneConfig(
            output_dir=output, base_model=base_model, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            learning_rate=lr, temperature=temperature, n_negatives=negatives, cached=cached,
            mini_batch_size=mini_batch_size, max_seq_length=max_seq_length, query_prefix=query_prefix,
            document_prefix=document_prefix, eval_steps=eval_steps, seed=seed, precision=precision,  # type: ignore[arg-type]
            lora=lora, lora_r=lora_r, lora_alpha=2 * lora_r, resume=resume,
        )  # fmt: skip
        try:
            result = run_finetune(
                load_settings(), pairs, collection, config, dev, dev_fraction, mine, mine_k, fn_margin
            )
        except DiverError as exc:
            fail(exc)
        if json_out:
            typer.echo(json.dumps(result.manifest, indent=2))
            return
        typer.echo(f"{result.output_dir}: {result.steps} steps in {result.seconds:.0f}s")
        if result.dev_best:
            typer.echo(f"  dev nDCG@10 {result.dev_before.get('ndcg@10', float('nan')):.4f} -> "
                       f"{result.dev_best.get('ndcg@10', float('nan')):.4f}")  # fmt: skip
        typer.echo(f"  next: diver reindex {collection} --model {result.output_dir.resolve()}")

    @app.command()
    def reindex(
        collection: Annotated[str, typer.Argument(help="Collection to re-embed.")],
        model: Annotated[str, typer.Option("--model", "-m", help="Sentence-transformers folder or id.")],
        batch: Annotated[int, typer.Option(help="Chunks per embedding call.")] = 256,
        query_prefix: Annotated[str | None, typer.Option(help="Default: the model's manifest.")] = None,
        document_prefix: Annotated[str | None, typer.Option(help="Default: the model's manifest.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Re-embed a collection with another model (catalog and BM25 kept; resumable: rerun to continue)."""
        from diver.train.reindex import embedder_for, reindex_collection

        try:
            settings = load_settings()
            embedder = embedder_for(settings, model, query_prefix, document_prefix)
            with _in_process_engine(settings) as engine:
                report = reindex_collection(engine, collection, embedder, batch=batch, progress=not json_out)
        except DiverError as exc:
            fail(exc)
        if json_out:
            typer.echo(json.dumps(report.as_dict(), indent=2))
            return
        typer.echo(f"{collection}: {report.chunks} chunks now embedded by {report.embedder} ({report.dimensions} dims; "
                   f"{report.embedded} embedded, {report.reused} reused, {report.seconds:.1f}s)")  # fmt: skip
        for note in report.notes:
            typer.echo(f"  note: {note}", err=True)
        prefix = getattr(embedder, "settings", None)
        typer.echo(f"  search it with: export DIVER_EMBEDDING__MODEL={report.embedder}")
        if prefix is not None and prefix.query_prefix:
            typer.echo(f"  and: export DIVER_EMBEDDING__QUERY_PREFIX={json.dumps(prefix.query_prefix)}")

    @app.command()
    def synth(
        collection: Annotated[str, typer.Argument(help="Collection whose documents are sampled.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Pairs jsonl to write.")],
        documents: Annotated[int, typer.Option(help="Documents sampled.")] = 50,
        per_document: Annotated[int, typer.Option(help="Queries asked for per document.")] = 2,
        seed: Annotated[int, typer.Option()] = 0,
        check: Annotated[
            bool, typer.Option(help="Keep only queries the LLM says the document answers.")
        ] = False,
        max_overlap: Annotated[float, typer.Option(help="Drop queries sharing more content words.")] = 0.5,
        role: Annotated[
            str, typer.Option(help="LLM role whose model writes: expander or reranker.")
        ] = "expander",
        json_out: JsonOpt = False,
    ) -> None:
        """Write reasoning-intensive synthetic queries for sampled documents (finetune format)."""
        from diver.llm.client import build_llm
        from diver.train.data import collection_corpus
        from diver.train.pairs import write_pairs
        from diver.train.synth import SynthConfig, run_synthesize

        if role not in ("expander", "reranker"):
            fail(InputError(f"--role must be expander or reranker, got {role!r}"))
        try:
            settings = load_settings()
            writer = build_llm(settings, role)
            if writer is None:
                raise LLMUnavailable(f"no {role} model configured (set DIVER_LLM__{role.upper()}__MODEL)")
            with _in_process_engine(settings) as engine:
                corpus = collection_corpus(engine.collection(collection))
            config = SynthConfig(documents=documents, per_document=per_document, seed=seed, check=check,
                                 max_overlap=max_overlap)  # fmt: skip
            pairs, report = run_synthesize(corpus, writer, config)
            write_pairs(output, pairs)
        except DiverError as exc:
            fail(exc)
        if json_out:
            typer.echo(json.dumps(report.as_dict(), indent=2))
            return
        typer.echo(f"{output}: {report.kept} queries kept of {report.generated} for {report.documents} documents "
                   f"(dropped: {report.dropped or 'none'})")  # fmt: skip
