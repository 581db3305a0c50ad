"""Unknown DIVER_* environment variables are refused with the nearest valid name (issue 10, item 5)."""

import re
import subprocess
from pathlib import Path

import pytest

from diver.config import DiverSettings, load_settings
from diver.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
NOT_VARIABLES = {
    "DIVER_ENGINE_ERROR"
}  # a line prefix of the engine service protocol (diver/service/client.py)


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("DIVER_FUSON__W_DENSE", "DIVER_FUSION__W_DENSE"),  # a misspelled section: silently ignored before
        ("DIVER_LLM__EXPANDR__MODEL", "DIVER_LLM__EXPANDER__MODEL"),  # a misspelled section at depth 2
        ("DIVER_LLM__RERANKER__MODLE", "DIVER_LLM__RERANKER__MODEL"),  # a misspelled field at depth 2
        ("DIVER_DATADIR", "DIVER_DATA_DIR"),
        (
            "diver_fuson__w_dense",
            "DIVER_FUSION__W_DENSE",
        ),  # names are case-insensitive, as pydantic reads them
    ],
)
def test_unknown_variable_is_refused_with_the_nearest_name(monkeypatch, tmp_path, variable, nearest):
    monkeypatch.setenv(variable, "0.9")
    with pytest.raises(ConfigError, match=re.escape(f"{variable}: no such setting; did you mean {nearest}?")):
        load_settings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match=re.escape(nearest)):
        DiverSettings(data_dir=tmp_path)


def test_unrelated_unknown_variable_names_the_reference(monkeypatch, tmp_path):
    monkeypatch.setenv("DIVER_ZZZZZZZZZZZZZZZZ", "1")
    with pytest.raises(ConfigError, match="docs/configuration.md"):
        load_settings(data_dir=tmp_path)


def test_every_setting_at_any_depth_and_the_other_variables_are_accepted(monkeypatch, tmp_path):
    values = {
        "DIVER_FUSION__W_DENSE": "0.9",
        "DIVER_LLM__EXPANDER__MAX_RETRIES": "1",
        "diver_llm__reranker__model": "m",
        "DIVER_LLM__RERANKER": '{"temperature": 0.1}',  # a whole section as JSON
        "DIVER_CACHE_DIR": str(tmp_path / "cache"),
        "DIVER_LOG_LEVEL": "INFO",
        "DIVER_BENCHMARK_DATA": str(tmp_path),
        "DIVER_TEST_REPORT": str(tmp_path / "r.json"),
        "DIVER_TEST_LLM_THREADS": "2",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(data_dir=tmp_path)
    assert settings.fusion.w_dense == 0.9 and settings.llm.expander.max_retries == 1
    assert settings.llm.reranker.temperature == 0.1


def test_every_diver_variable_the_repository_mentions_is_valid():
    """Docs, tests, servers, graph, evals, benchmarks and the Makefile only use names the check accepts."""
    from diver.config import check_env_names

    listed = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    pattern = re.compile(r"\bDIVER_[A-Z0-9_]*[A-Z0-9]\b")
    found: dict[str, str] = {}
    for name in filter(None, listed):
        path = REPO / name
        if path.suffix not in {
            ".py",
            ".md",
            ".toml",
            ".json",
            ".yml",
            ".yaml",
            ".sh",
            ".txt",
        } and path.name != ("Makefile"):
            continue
        if not path.is_file() or path == Path(__file__).resolve():  # this file's typos are on purpose
            continue
        for match in pattern.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.setdefault(match.group(), name)
    unknown = {}
    for variable, where in found.items():
        if variable.endswith("__") or variable in NOT_VARIABLES:
            continue  # a prefix that code completes at run time, e.g. f"DIVER_LLM__{role}__BASE_URL"
        try:
            check_env_names({variable: ""})
        except ConfigError as exc:
            unknown[variable] = f"{where}: {exc}"
    assert not unknown, f"DIVER_ names that load_settings would refuse: {unknown}"
    assert len(found) > 30
