"""InfoNCE fine-tuning on sentence-transformers: in-batch + hard negatives, dev IR evaluation every N steps
with the best checkpoint kept, resume, optional LoRA, fp16/bf16 and gradient checkpointing on CUDA.

The output folder is a plain sentence-transformers model (LoRA adapters are merged) that
``DIVER_EMBEDDING__MODEL=<folder>`` and ``diver reindex --model <folder>`` accept, plus ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from diver.config import DEFAULT_EMBEDDING_MODEL
from diver.errors import ConfigError, InputError, require
from diver.train.data import ir_inputs, training_rows
from diver.train.pairs import TrainingPair, pairs_hash

log = logging.getLogger(__name__)
BEST_METRIC = "dev_cosine_ndcg@10"
MANIFEST = "manifest.json"


@dataclass
class FinetuneConfig:
    output_dir: Path
    base_model: str = DEFAULT_EMBEDDING_MODEL
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    temperature: float = 0.1  # InfoNCE temperature; the loss scale is 1 / temperature
    n_negatives: int = 1  # hard-negative columns per row (in-batch negatives come on top)
    cached: bool = False  # CachedMultipleNegativesRankingLoss: large batches in mini-batches (GradCache)
    mini_batch_size: int = 16
    max_seq_length: int | None = 128
    query_prefix: str = ""
    document_prefix: str = ""
    eval_steps: int = 50
    dev_corpus_max: int = 20000
    seed: int = 0
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    gradient_checkpointing: bool | None = None  # None: on with CUDA
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None  # None: peft's default for the architecture
    resume: bool | str = False  # True: the latest checkpoint under output_dir/checkpoints
    keep_checkpoints: bool = False
    save_total_limit: int = 2
    logging_steps: int = 10
    device: str = "auto"
    progress: bool = True

    def params(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class FinetuneResult:
    output_dir: Path
    steps: int
    seconds: float
    dev_before: dict[str, float] = field(default_factory=dict)
    dev_best: dict[str, float] = field(default_factory=dict)
    resumed_from: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def _precision(config: FinetuneConfig, device: str, torch: Any) -> str:
    if device != "cuda":
        if config.precision in ("fp16", "bf16"):
            raise ConfigError(f"precision {config.precision} needs CUDA; this run is on {device}")
        return "fp32"
    if config.precision != "auto":
        return config.precision
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def load_model(config: FinetuneConfig, device: str) -> Any:
    from diver.index.dense.embedders import resolve_model_path

    st = require("sentence_transformers", "train", "fine-tuning")
    try:
        model = st.SentenceTransformer(resolve_model_path(config.base_model), device=device)
    except OSError as exc:
        raise ConfigError(f"cannot load base model {config.base_model!r}: {exc}") from exc
    if config.max_seq_length:
        model.max_seq_length = config.max_seq_length
    return model


def add_lora(model: Any, config: FinetuneConfig) -> Any:
    """Wrap the transformer in a peft LoRA model (merged back into plain weights after training)."""
    peft = require("peft", "train", "LoRA fine-tuning")
    lora = peft.LoraConfig(
        task_type=peft.TaskType.FEATURE_EXTRACTION,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
    )
    module = model[0]
    module.auto_model = peft.get_peft_model(module.auto_model, lora)
    if config.gradient_checkpointing:
        module.auto_model.enable_input_require_grads()
    return module.auto_model


def merge_lora(model: Any) -> None:
    module = model[0]
    if hasattr(module.auto_model, "merge_and_unload"):
        module.auto_model = module.auto_model.merge_and_unload()


def latest_checkpoint(directory: Path) -> str | None:
    if not directory.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    # transformers' trainer_utils is untyped; unused-ignore: without the train extra the import is Any
    last: str | None = get_last_checkpoint(str(directory))  # type: ignore[no-untyped-call,unused-ignore]
    return last


def finetune(
    train: Sequence[TrainingPair],
    corpus: Mapping[str, str],
    config: FinetuneConfig,
    dev: Sequence[TrainingPair] = (),
    extra_manifest: Mapping[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``config.base_model`` on ``train`` (texts of ids from ``corpus``); see the module doc."""
    if not train:
        raise InputError("no training pairs")
    if config.temperature <= 0:
        raise InputError(f"temperature must be > 0, got {config.temperature}")
    torch = require("torch", "train", "fine-tuning")
    st = require("sentence_transformers", "train", "fine-tuning")
    datasets = require("datasets", "train", "fine-tuning")
    import sentence_transformers.losses as losses

    from diver.index.dense.embedders import pick_device

    device = pick_device(config.device)
    precision = _precision(config, device, torch)
    if config.gradient_checkpointing is None:
        config.gradient_checkpointing = device == "cuda"
    out = Path(config.output_dir)
    checkpoints = out / "checkpoints"
    resume_from: str | None = None
    if config.resume:
        resume_from = config.resume if isinstance(config.resume, str) else latest_checkpoint(checkpoints)
        if resume_from is None:
            log.warning("no checkpoint under %s: training from the start", checkpoints)
    torch.manual_seed(config.seed)
    model = load_model(config, device)
    if config.lora:
        add_lora(model, config)

    rows = training_rows(train, corpus, config.n_negatives, config.seed)
    dataset = datasets.Dataset.from_dict(rows)
    scale = 1.0 / config.temperature
    if config.cached:
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=config.mini_batch_size)
    else:
        loss = losses.MultipleNegativesRankingLoss(model, scale=scale)

    evaluator = _dev_evaluator(dev, corpus, config) if dev else None
    dev_before = _metrics(evaluator(model)) if evaluator is not None and resume_from is None else {}
    args = _training_args(st, config, checkpoints, precision, device, list(rows), evaluator is not None)
    trainer = st.SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator
    )
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - started
    if config.lora:
        merge_lora(model)
    history = [
        {"step": e["step"], **{k.removeprefix("eval_"): v for k, v in e.items() if k.startswith("eval_dev")}}
        for e in trainer.state.log_history
        if f"eval_{BEST_METRIC}" in e
    ]
    dev_best = _metrics(evaluator(model)) if evaluator is not None else {}
    model.save(str(out))
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    manifest = build_manifest(config, train, dev, precision, device, trainer, seconds, dev_before, dev_best, history)
    manifest["resumed_from"] = resume_from
    manifest.update(extra_manifest or {})
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return FinetuneResult(out, int(trainer.state.global_step), seconds, dev_before, dev_best, resume_from, manifest)


def _dev_evaluator(dev: Sequence[TrainingPair], corpus: Mapping[str, str], config: FinetuneConfig) -> Any:
    """sentence-transformers' IR evaluator over the dev pairs (nDCG@10 is the best-model metric)."""
    import sentence_transformers.evaluation as evaluation

    queries, docs, relevant = ir_inputs(dev, corpus, config.dev_corpus_max, config.seed)
    return evaluation.InformationRetrievalEvaluator(
        queries, docs, relevant, name="dev", ndcg_at_k=[10], mrr_at_k=[10], map_at_k=[100],
        accuracy_at_k=[1, 10], precision_recall_at_k=[10, 100], batch_size=64,
        query_prompt=config.query_prefix or None, corpus_prompt=config.document_prefix or None,
        write_csv=False, main_score_function="cosine",
    )  # fmt: skip


def _training_args(st: Any, config: FinetuneConfig, checkpoints: Path, precision: str, device: str,
                   columns: list[str], evaluate: bool) -> Any:  # fmt: skip
    """The trainer's arguments: prompts per column, evaluation and best-model selection when there is a dev set."""
    from sentence_transformers.training_args import BatchSamplers

    prompts = {}
    if config.query_prefix:
        prompts["anchor"] = config.query_prefix
    if config.document_prefix:
        prompts.update({c: config.document_prefix for c in columns if c != "anchor"})
    eval_kwargs: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "steps", "save_steps": config.eval_steps}
    if evaluate:
        eval_kwargs.update(
            eval_strategy="steps", eval_steps=config.eval_steps, load_best_model_at_end=True,
            metric_for_best_model=f"eval_{BEST_METRIC}", greater_is_better=True,
        )  # fmt: skip
    return st.SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        **_warmup(config.warmup_ratio),
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        gradient_checkpointing=bool(config.gradient_checkpointing),
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate text is a false negative
        prompts=prompts or None,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        report_to="none",
        disable_tqdm=not config.progress,
        use_cpu=device == "cpu",
        dataloader_drop_last=False,
        **eval_kwargs,
    )


def _warmup(ratio: float) -> dict[str, float]:
    """transformers 5 takes the warmup ratio as a float ``warmup_steps`` (``warmup_ratio`` is deprecated)."""
    import transformers

    return {"warmup_steps": float(ratio)} if int(transformers.__version__.split(".")[0]) >= 5 else {"warmup_ratio": ratio}


def _metrics(raw: Mapping[str, float]) -> dict[str, float]:
    keep = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "accuracy@1")
    return {k.split("cosine_", 1)[1]: round(float(v), 4) for k, v in raw.items() if k.endswith(keep) and "cosine_" in k}


def build_manifest(
    config: FinetuneConfig,
    train: Sequence[TrainingPair],
    dev: Sequence[TrainingPair],
    precision: str,
    device: str,
    trainer: Any,
    seconds: float,
    dev_before: dict[str, float],
    dev_best: dict[str, float],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    import sentence_transformers
    import torch
    import transformers

    loss = "CachedMultipleNegativesRankingLoss" if config.cached else "MultipleNegativesRankingLoss"
    return {
        "format": 1,
        "kind": "diver-finetuned-embedder",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": config.base_model,
        "data": {"train_pairs": len(train), "dev_pairs": len(dev), "train_hash": pairs_hash(train),
                 "dev_hash": pairs_hash(dev) if dev else None},  # fmt: skip
        "loss": {"name": loss, "temperature": config.temperature, "scale": 1.0 / config.temperature,
                 "in_batch_negatives": True, "hard_negatives_per_query": config.n_negatives},  # fmt: skip
        "params": config.params(),
        "seed": config.seed,
        "device": device,
        "precision": precision,
        "steps": int(trainer.state.global_step),
        "train_seconds": round(seconds, 2),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "dev_before": dev_before,
        "dev_best": dev_best,
        "dev_history": history,
        "query_prefix": config.query_prefix,
        "document_prefix": config.document_prefix,
        "max_seq_length": config.max_seq_length,
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},  # fmt: skip
    }


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """The training manifest of a fine-tuned model folder ({} for a model DIVER did not train)."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc
    return manifest
