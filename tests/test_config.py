import pytest

from diver.config import DiverSettings, load_settings
from diver.errors import ConfigError


def test_defaults_match_the_paper(tmp_path):
    s = load_settings(data_dir=tmp_path)
    assert (s.bm25.k1, s.bm25.b) == (0.9, 0.4)
    assert s.fusion.w_dense == 0.5 and s.fusion.method == "minmax"
    assert s.chunking.overlap == 0.2
    assert (s.expansion.rounds, s.expansion.feedback_k, s.expansion.n) == (2, 5, 2)
    assert (s.rerank.rerank_k, s.rerank.pointwise_weight, s.rerank.listwise_weight) == (100, 0.6, 0.4)
    assert s.resolved_cache_dir == tmp_path / "cache"


def test_unknown_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="extra"):
        load_settings(data_dir=tmp_path, embeddings={"model": "x"})
    with pytest.raises(ConfigError):
        load_settings(data_dir=tmp_path, bm25={"k": 1.0})


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("DIVER_DATA_DIR", str(tmp_path / "x"))
    monkeypatch.setenv("DIVER_FUSION__W_DENSE", "0.7")
    monkeypatch.setenv("DIVER_EMBEDDING__MODEL", "AQ-MedAI/Diver-Retriever-4B")
    s = load_settings()
    assert s.data_dir == tmp_path / "x" and s.fusion.w_dense == 0.7
    assert s.embedding.model == "AQ-MedAI/Diver-Retriever-4B"


def test_env_typo_and_bad_values_fail(monkeypatch):
    monkeypatch.setenv("DIVER_FUSION__W_DENSE", "2")
    with pytest.raises(ConfigError, match="w_dense"):
        load_settings()


def test_toml_file(monkeypatch, tmp_path):
    path = tmp_path / "diver.toml"
    path.write_text('[bm25]\nk1 = 1.2\n[embedding]\nquery_prefix = "Query: "\n')
    monkeypatch.setenv("DIVER_CONFIG", str(path))
    s = load_settings(data_dir=tmp_path)
    assert s.bm25.k1 == 1.2 and s.embedding.query_prefix == "Query: "
    monkeypatch.setenv("DIVER_BM25__K1", "1.5")  # env beats file
    assert load_settings(data_dir=tmp_path).bm25.k1 == 1.5
    path.write_text("[bm25\n")
    with pytest.raises(ConfigError, match="DIVER_CONFIG"):
        load_settings(data_dir=tmp_path)


def test_secrets_are_redacted(tmp_path):
    s = load_settings(data_dir=tmp_path, llm={"reranker": {"api_key": "sk-secret-123"}})
    assert "sk-secret-123" not in s.model_dump_json()
    assert "sk-secret-123" not in repr(s)


def test_every_field_is_documented():
    missing = []

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                walk(annotation, f"{prefix}{name}.")
            elif not field.description:
                missing.append(prefix + name)

    walk(DiverSettings, "")
    assert not missing, f"knobs without a description: {missing}"


def test_configuration_reference_is_up_to_date():
    from pathlib import Path

    from diver.config.docs import render

    path = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert path.read_text(encoding="utf-8") == render(), "run: python -m diver.config.docs > docs/configuration.md"
