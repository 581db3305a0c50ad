"""prompts.dir: a folder of templates that replace the shipped ones by name, checked for placeholders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from diver.config import load_settings
from diver.errors import ConfigError
from diver.hits import SearchHit
from diver.llm.client import LLMUsage, build_llm
from diver.llm.prompts import check_prompt_dir, load_template, use_prompt_dir

# The reference's pointwise prompt (Reranker/rerank_pointwise.py), its {} slots written as placeholders.
REFERENCE_POINTWISE = """[user]
Here is the **relevance definition** in a retrieval task: The document is relevant to the query if ...
Now given a **query** ($query) and a **document** ($document) in this retrieval task, your mission is to
perform the following steps. ... (4) Finally, give your final score by the format "Relevance score: X".
"""


@pytest.fixture(autouse=True)
def _shipped_afterwards() -> Iterator[None]:
    yield
    use_prompt_dir(None)


def test_an_override_replaces_the_shipped_template_in_the_calls(tmp_path: Path) -> None:
    from llm_fakes import ScriptedChatModel

    from diver.stages.rerank.pointwise import rerank_pointwise

    folder = tmp_path / "reference-prompts"
    folder.mkdir()
    (folder / "pointwise_general.txt").write_text(REFERENCE_POINTWISE, encoding="utf-8")
    assert check_prompt_dir(folder) == ["pointwise_general"]
    settings = load_settings(data_dir=tmp_path / "d", prompts={"dir": str(folder)}, llm={"reranker": {"model": "fake"}})
    model = ScriptedChatModel(reply=lambda p: "Relevance score: 7", prompts=[])
    llm = build_llm(settings, "reranker", lambda _s: model)
    hits = [SearchHit(id="a", rank=1, score=0.5, title="", highlight="")]
    asyncio.run(rerank_pointwise(llm, "why is the sky blue", hits, {"a": "Rayleigh $cattering {x}"},
                                 settings.rerank, LLMUsage()))  # fmt: skip
    assert "**relevance definition**" in model.prompts[0] and "why is the sky blue" in model.prompts[0]
    assert "Rayleigh $cattering {x}" in model.prompts[0]  # document text is never re-interpreted
    assert "relevance definition" not in load_template("pointwise_coding").user  # other names stay shipped
    use_prompt_dir(None)
    assert "relevance definition" not in load_template("pointwise_general").user


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("pointwise_general", "[user]\nScore the $query only.", r"lacks \$document"),
        ("listwise", "[user]\n$query $candidates $documents", r"uses \$documents"),
        ("pointwise_generl", "[user]\n$query $document", "overrides no prompt"),
        ("groupwise", "[system]\nno user section", r"no \[user\] section"),
    ],
)
def test_a_bad_override_is_refused_with_the_reason(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        check_prompt_dir(tmp_path)
    settings = load_settings(data_dir=tmp_path / "d", prompts={"dir": str(tmp_path)}, llm={"reranker": {"model": "m"}})
    with pytest.raises(ConfigError):
        build_llm(settings, "reranker")


def test_optional_counts_may_be_left_out(tmp_path: Path) -> None:
    (tmp_path / "groupwise.txt").write_text("[user]\nQuery: $query\nDocuments:\n$passages\n", encoding="utf-8")
    assert check_prompt_dir(tmp_path) == ["groupwise"]
