"""``diver eval`` fuses BM25 and dense with DIVER's per-domain weight (Retriever/merge_scores.py of
AQ-MedAI/Diver: 0.7 for leetcode, pony, aops and both theoremqa domains, 0.5 elsewhere) unless
``fusion.w_dense`` is set, and records the weight it used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_eval_bright_fixture import DOCS, EXAMPLES, FakeCollection, FakeEngine

from diver.config import load_settings
from diver.evals.runner import EvalConfig, run_eval
from diver.evals.weights import domain_w_dense, fusion_record, reference_w_dense


@pytest.mark.parametrize(
    ("domain", "weight"),
    [
        ("leetcode", 0.7), ("pony", 0.7), ("aops", 0.7), ("theoremqa_theorems", 0.7),
        ("theoremqa_questions", 0.7), ("theoremqa-theorems-offline", 0.7), ("theoremqa-questions-offline", 0.7),
        ("biology", 0.5), ("earth_science", 0.5), ("economics", 0.5), ("psychology", 0.5), ("robotics", 0.5),
        ("stackoverflow", 0.5), ("sustainable_living", 0.5),
    ],
)  # fmt: skip
def test_reference_weights_per_domain(domain: str, weight: float) -> None:
    assert reference_w_dense(domain) == weight


def test_explicit_w_dense_wins_and_the_library_default_stays_one_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = load_settings(data_dir=Path("/tmp/x"))
    assert default.fusion.w_dense == 0.5
    assert domain_w_dense("leetcode", default) == (0.7, "DIVER per-domain reference")
    assert domain_w_dense("biology", default)[0] == 0.5
    assert (
        domain_w_dense("leetcode", load_settings(data_dir=Path("/tmp/x"), fusion={"w_dense": 0.9}))[0] == 0.9
    )
    monkeypatch.setenv("DIVER_FUSION__W_DENSE", "0.5")  # set explicitly, even to the default value
    assert domain_w_dense("pony", load_settings(data_dir=Path("/tmp/x"))) == (
        0.5,
        "fusion.w_dense (set explicitly)",
    )
    rrf = load_settings(data_dir=Path("/tmp/x"), fusion={"method": "rrf"})
    assert fusion_record(["pony"], rrf)["pony"]["w_dense"] is None


class WeightEngine(FakeEngine):
    """A fake engine with settings; its collections record the fusion weight each hybrid search saw."""

    def __init__(self, settings: Any) -> None:
        super().__init__()
        self.settings = settings
        self.seen: dict[str, list[float]] = {}

    def collection(self, name: str, create: bool = False) -> FakeCollection:
        col = super().collection(name, create)
        engine = self

        class Recording(FakeCollection):
            def search_many(self, queries: list[str], k: int, mode: str, exclude: list[set[str]]) -> Any:
                if mode == "hybrid":
                    engine.seen.setdefault(self.name, []).append(engine.settings.fusion.w_dense)
                return super().search_many(queries, k, mode, exclude)

        col.__class__ = Recording
        return col


def _bright(root: Path, domains: list[str]) -> Path:
    for config, rows in (("examples", EXAMPLES), ("documents", DOCS)):
        (root / config).mkdir(parents=True, exist_ok=True)
        for domain in domains:
            (root / config / f"{domain}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_bright_eval_uses_and_records_the_reference_weight_per_domain(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    engine = WeightEngine(settings)
    config = EvalConfig(
        benchmark="bright", domains=["leetcode", "biology"], stages=["hybrid"], progress=False,
        bright_source=f"local:{_bright(tmp_path / 'bright', ['leetcode', 'biology'])}", out_dir=tmp_path / "run",
    )  # fmt: skip
    result = run_eval(config, settings, engine=engine)
    by_domain = {name.split("-")[2]: weights for name, weights in engine.seen.items()}
    assert by_domain == {"leetcode": [0.7], "biology": [0.5]}
    assert engine.settings.fusion.w_dense == 0.5  # restored after the run
    assert result.manifest["fusion"]["leetcode"] == {
        "method": "minmax", "w_dense": 0.7, "source": "DIVER per-domain reference"
    }  # fmt: skip
    assert result.manifest["fusion"]["biology"]["w_dense"] == 0.5
    assert "Hybrid fusion w_dense: leetcode 0.7, biology 0.5" in (result.out_dir / "report.md").read_text()


def test_bright_eval_keeps_an_explicit_weight(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", fusion={"w_dense": 0.3})
    engine = WeightEngine(settings)
    config = EvalConfig(
        benchmark="bright", domains=["leetcode"], stages=["hybrid"], progress=False,
        bright_source=f"local:{_bright(tmp_path / 'bright', ['leetcode'])}", out_dir=tmp_path / "run",
    )  # fmt: skip
    result = run_eval(config, settings, engine=engine)
    assert list(engine.seen.values()) == [[0.3]]
    assert result.manifest["fusion"]["leetcode"]["source"] == "fusion.w_dense (set explicitly)"
