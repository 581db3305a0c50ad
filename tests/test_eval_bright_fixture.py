"""End to end on a tiny BRIGHT-layout folder: run files, metrics, report, chart, manifest, resume, exclusions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from diver.config import load_settings
from diver.evals.cli import register
from diver.evals.runner import EvalConfig, StageUnavailable, run_eval
from diver.evals.trec import read_run
from diver.hits import CollectionInfo, IndexReport, SearchHit, SearchResult
from diver.text.documents import Document

EXAMPLES = [
    {
        "id": "0",
        "query": "moths fly to light lamps",
        "reasoning": "LEAK",
        "gold_answer": "LEAK",
        "gold_ids": ["moth_1.txt"],
        "gold_ids_long": ["moth.txt"],
        "excluded_ids": ["moth_0.txt"],
    },
    {
        "id": "1",
        "query": "plants sense gravity roots",
        "reasoning": "LEAK",
        "gold_answer": "LEAK",
        "gold_ids": ["plant_0.txt", "plant_1.txt"],
        "gold_ids_long": ["plant.txt"],
        "excluded_ids": ["N/A"],
    },
    {
        "id": "2",
        "query": "why is the sky blue light scattering",
        "reasoning": "LEAK",
        "gold_answer": "LEAK",
        "gold_ids": ["sky_0.txt"],
        "gold_ids_long": ["sky.txt"],
        "excluded_ids": ["plant_0.txt", "moth_1.txt"],
    },
]
DOCS = [
    {"id": "moth_0.txt", "content": "Moths fly to light: lamps and the moon guide moths."},
    {"id": "moth_1.txt", "content": "Artificial light lamps confuse moths that fly at night."},
    {"id": "plant_0.txt", "content": "Roots of plants sense gravity with statoliths."},
    {"id": "plant_1.txt", "content": "Gravity sensing in plant roots bends them downwards."},
    {"id": "sky_0.txt", "content": "Rayleigh scattering of sunlight makes the sky blue."},
    {"id": "noise_0.txt", "content": "Bread is baked from flour, water and yeast."},
    {"id": "noise_1.txt", "content": "Light rail trains carry commuters across the city."},
]


def bright_folder(root: Path) -> Path:
    for config, rows in (("examples", EXAMPLES), ("documents", DOCS)):
        (root / config).mkdir(parents=True, exist_ok=True)
        (root / config / "biology.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
        )
    return root


class FakeCollection:
    """Word-overlap ranking. It ignores ``exclude`` on purpose: the runner must still drop excluded ids."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.docs: dict[str, Document] = {}
        self.searched: list[str] = []

    def upsert(self, docs: list[Document], progress: bool = False) -> IndexReport:
        new = [d for d in docs if d.id not in self.docs]
        self.docs.update({d.id: d for d in docs})
        return IndexReport(
            collection=self.name, added=len(new), unchanged=len(docs) - len(new), chunks=len(docs)
        )

    def search_many(
        self, queries: list[str], k: int, mode: str, exclude: list[set[str]]
    ) -> list[SearchResult]:
        out = []
        for query in queries:
            self.searched.append(query)
            words = set(re.findall(r"\w+", query.lower()))
            scored = sorted(
                (
                    (
                        len(words & set(re.findall(r"\w+", d.text.lower())))
                        + (0.01 if mode == "dense" else 0),
                        d.id,
                    )
                    for d in self.docs.values()
                ),
                key=lambda s: (-s[0], s[1]),
            )
            hits = [SearchHit(id=i, rank=r, score=s) for r, (s, i) in enumerate(scored[:k], 1)]
            out.append(SearchResult(collection=self.name, query=query, mode=mode, k=k, hits=hits))  # type: ignore[arg-type]
        return out


class FakeEngine:
    def __init__(self) -> None:
        self.collections: dict[str, FakeCollection] = {}

    def list_collections(self) -> list[CollectionInfo]:
        return [
            CollectionInfo(
                name=n,
                documents=len(c.docs),
                chunks=len(c.docs),
                embedder="fake",
                dimensions=3,
                chunk_tokens=256,
                created_at="now",
            )
            for n, c in self.collections.items()
        ]

    def collection(self, name: str, create: bool = False) -> FakeCollection:
        if name not in self.collections:
            assert create
            self.collections[name] = FakeCollection(name)
        return self.collections[name]

    @property
    def embedder(self) -> Any:
        return type("E", (), {"id": "fake", "dimensions": 3, "max_seq_length": 256})()

    def close(self) -> None:
        pass


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    return load_settings(data_dir=tmp_path / "data", embedding={"api_key": "sk-very-secret"})


def config(tmp_path: Path, **kw: Any) -> EvalConfig:
    base = dict(
        benchmark="bright",
        domains=["biology"],
        bright_source=f"local:{bright_folder(tmp_path / 'bright')}",
        out_dir=tmp_path / "run",
        progress=False,
    )
    return EvalConfig(**{**base, **kw})


def test_full_run_writes_everything_and_never_ranks_excluded_ids(tmp_path: Path, settings: Any) -> None:
    engine = FakeEngine()
    result = run_eval(config(tmp_path), settings, engine=engine)
    out = result.out_dir
    for stage in ("bm25", "dense", "hybrid"):
        run = read_run(out / f"run.{stage}.biology.trec")
        assert set(run) == {"0", "1", "2"}
        for row in EXAMPLES:
            excluded = set(row["excluded_ids"]) - {"N/A"}
            assert not excluded & {doc for doc, _ in run[row["id"]]}, (stage, row["id"])
        assert len(run["1"]) == len(DOCS)  # nothing excluded there: every document kept (< top 1000)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["comparable_to_bright"] and metrics["qrels_field"] == "gold_ids"
    ndcg = metrics["stages"]["bm25"]["domains"]["biology"]["mean"]["nDCG@10"]
    assert 0 < ndcg <= 1
    assert metrics["stages"]["hybrid"]["average"]["nDCG@10"] == pytest.approx(
        metrics["stages"]["hybrid"]["domains"]["biology"]["mean"]["nDCG@10"]
    )
    report = (out / "report.md").read_text()
    assert "| bm25 (ours) |" in report and "BM25 (BRIGHT paper)" in report and "41.6" in report
    assert "approximates BRIGHT's" in report  # the BM25 row is not claimed identical to BRIGHT's
    assert (out / "ndcg10.png").read_bytes()[:4] == b"\x89PNG"
    manifest_text = (out / "manifest.json").read_text()
    assert "sk-very-secret" not in manifest_text
    manifest = json.loads(manifest_text)
    assert any(k.endswith("biology.jsonl") for k in manifest["data_sha256"])
    assert "commit" in manifest["git"] and manifest["versions"]["python"]
    assert "LEAK" not in json.dumps(engine.collections[next(iter(engine.collections))].searched)


def test_rerun_reuses_finished_stages_and_collection(tmp_path: Path, settings: Any) -> None:
    engine = FakeEngine()
    run_eval(config(tmp_path, stages=["bm25"]), settings, engine=engine)
    col = next(iter(engine.collections.values()))
    searched = len(col.searched)
    again = run_eval(config(tmp_path, stages=["bm25", "dense"]), settings, engine=engine)
    assert len(col.searched) == searched + 3  # only the new stage ran
    assert again.manifest["reused"]["run_files"] == ["run.bm25.biology.trec"]
    assert again.manifest["reused"]["collections"] == {"biology": "reused"}


def test_interrupted_stage_resumes_from_its_checkpoint(tmp_path: Path, settings: Any) -> None:
    engine = FakeEngine()
    real = FakeCollection.search_many
    calls = {"n": 0}

    def flaky(self: FakeCollection, *args: Any, **kwargs: Any) -> list[SearchResult]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FakeCollection, "search_many", flaky)
        with pytest.raises(KeyboardInterrupt):
            run_eval(config(tmp_path, stages=["bm25"], query_batch=1), settings, engine=engine)
    out = tmp_path / "run"
    assert not (out / "run.bm25.biology.trec").exists()
    assert (out / "run.bm25.biology.partial.jsonl").is_file()
    col = next(iter(engine.collections.values()))
    before = len(col.searched)
    run_eval(config(tmp_path, stages=["bm25"], query_batch=1), settings, engine=engine)
    assert len(col.searched) - before == 2  # the first query came from the checkpoint
    assert not (out / "run.bm25.biology.partial.jsonl").exists()
    assert set(read_run(out / "run.bm25.biology.trec")) == {"0", "1", "2"}


def test_query_rewrites_file(tmp_path: Path, settings: Any) -> None:
    rewrites = tmp_path / "rw.jsonl"
    rewrites.write_text(
        "".join(json.dumps({"id": r["id"], "query": f"REWRITE {r['query']}"}) + "\n" for r in EXAMPLES)
    )
    engine = FakeEngine()
    result = run_eval(config(tmp_path, stages=["bm25"], queries=str(rewrites)), settings, engine=engine)
    col = next(iter(engine.collections.values()))
    assert all(q.startswith("REWRITE ") for q in col.searched)
    assert result.metrics["query_origin"] == str(rewrites)
    assert str(rewrites) in result.manifest["data_sha256"]


def test_llm_stages_are_refused_before_any_work(tmp_path: Path, settings: Any) -> None:
    engine = FakeEngine()
    with pytest.raises(StageUnavailable, match="expander LLM"):
        run_eval(config(tmp_path, stages=["bm25", "expand"]), settings, engine=engine)
    assert engine.collections == {} and not (tmp_path / "run").exists()


def test_cli_refuses_rerank_with_a_clear_message(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--benchmark",
            "theoremqa-theorems-offline",
            "--stages",
            "bm25,rerank",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "expander LLM" in result.output
    bad = CliRunner().invoke(app, ["eval", "--benchmark", "msmarco"])
    assert bad.exit_code == 2 and "unknown benchmark" in bad.output


@pytest.mark.slow
def test_full_run_with_the_real_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("diver.index.engine")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = load_settings(data_dir=tmp_path / "data")
    result = run_eval(config(tmp_path), settings)
    for stage in ("bm25", "dense", "hybrid"):
        run = read_run(result.out_dir / f"run.{stage}.biology.trec")
        assert set(run) == {"0", "1", "2"}
        for row in EXAMPLES:
            excluded = set(row["excluded_ids"]) - {"N/A"}
            assert not excluded & {doc for doc, _ in run[row["id"]]}, (stage, row["id"])
    assert result.metrics["stages"]["bm25"]["average"]["nDCG@10"] > 0.5
    assert result.manifest["models"]["dimensions"] == 384
    backend = result.manifest["models"]["embedding_backend"]  # embedding.backend=auto: what it picked
    assert backend["requested"] == "auto" and backend["picked"] in {"torch", "onnx", "openvino"}


def test_limit_queries_and_rewrites_per_domain(tmp_path: Path, settings: Any) -> None:
    rewrites = tmp_path / "rw.jsonl"
    rows = [{"id": r["id"], "query": f"RW {r['query']}", "domain": "biology"} for r in EXAMPLES]
    rows.append({"id": "0", "query": "other domain", "domain": "earth-science"})
    rewrites.write_text("".join(json.dumps(r) + "\n" for r in rows))
    engine = FakeEngine()
    result = run_eval(
        config(tmp_path, stages=["bm25"], limit_queries=2, queries=str(rewrites)), settings, engine=engine
    )
    block = result.metrics["stages"]["bm25"]["domains"]["biology"]
    assert block["queries"] == 2
    assert set(read_run(result.out_dir / "run.bm25.biology.trec")) == {"0", "1"}
    col = next(iter(engine.collections.values()))
    assert col.searched == ["RW moths fly to light lamps", "RW plants sense gravity roots"]
    assert any("limited to the first 2" in n for n in result.metrics["notes"]["biology"])
