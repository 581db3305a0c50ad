"""ChatLLM: lazy client, disk cache, retries/backoff, timeout, concurrency, usage, key hygiene."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from llm_fakes import ScriptedChatModel, StatusError, scripted_llm

import diver.llm.client as llm_module
from diver.cache import CompletionCache
from diver.config import ModelSettings, load_settings
from diver.errors import LLMError, LLMUnavailable
from diver.llm.client import ChatLLM, LLMUsage, build_llm, make_chat_openai

MESSAGES = [("system", "be brief"), ("user", "hello")]


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    real = llm_module._backoff
    monkeypatch.setattr(llm_module, "_backoff", lambda attempt, exc: min(real(attempt, exc), 0.0))


def test_no_client_until_a_call() -> None:
    built: list[ModelSettings] = []

    def factory(settings: ModelSettings) -> ScriptedChatModel:
        built.append(settings)
        return ScriptedChatModel(reply=lambda p: "ok", prompts=[])

    llm = ChatLLM(ModelSettings(model="m"), role="expander", factory=factory)
    assert built == []
    assert asyncio.run(llm.complete(MESSAGES, LLMUsage())) == "ok"
    assert len(built) == 1


def test_missing_model_is_unavailable() -> None:
    with pytest.raises(LLMUnavailable, match="llm.reranker.model"):
        ChatLLM(ModelSettings(), role="reranker")
    assert build_llm(load_settings(data_dir=Path("/nonexistent")), "reranker") is None


async def test_cache_hit_skips_the_model(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path)
    model = ScriptedChatModel(reply=lambda p: "answer", prompts=[])
    llm = ChatLLM(ModelSettings(model="m"), role="expander", cache=cache, factory=lambda s: model)
    usage = LLMUsage()
    assert await llm.complete(MESSAGES, usage) == "answer"
    assert await llm.complete(MESSAGES, usage) == "answer"
    assert len(model.prompts) == 1
    assert usage.calls == 1 and usage.cache_hits == 1 and usage.cached_tokens > 0


async def test_failures_and_empty_replies_are_not_cached(tmp_path: Path) -> None:
    replies = iter([ValueError("bad request"), "", "good"])
    model = ScriptedChatModel(reply=lambda p: next(replies), prompts=[])
    llm = ChatLLM(
        ModelSettings(model="m", max_retries=0),
        role="r",
        cache=CompletionCache(tmp_path),
        factory=lambda s: model,
    )
    usage = LLMUsage()
    with pytest.raises(LLMError, match="ValueError: bad request"):
        await llm.complete(MESSAGES, usage)
    assert await llm.complete(MESSAGES, usage) == ""
    assert await llm.complete(MESSAGES, usage) == "good"
    assert await llm.complete(MESSAGES, usage) == "good"
    assert len(model.prompts) == 3 and usage.failures == 1 and usage.cache_hits == 1


def test_cache_key_depends_on_sampling() -> None:
    llm = ChatLLM(ModelSettings(model="m"), role="r")
    hot = ChatLLM(ModelSettings(model="m", temperature=0.7), role="r")
    keys = {
        llm.cache_key(MESSAGES, 0, 1),
        llm.cache_key(MESSAGES, 1, 2),
        llm.cache_key(MESSAGES, 0, 2),
        hot.cache_key(MESSAGES, 0, 1),
        llm.cache_key([("user", "other")], 0, 1),
    }
    assert len(keys) == 5


async def test_transient_errors_are_retried() -> None:
    replies = iter([StatusError(503), StatusError(429, {"retry-after": "0"}), "fine"])
    llm, model = scripted_llm(lambda p: next(replies), max_retries=2)
    usage = LLMUsage()
    assert await llm.complete(MESSAGES, usage) == "fine"
    assert usage.retries == 2 and usage.calls == 1 and usage.failures == 0


async def test_client_errors_are_not_retried() -> None:
    llm, model = scripted_llm(lambda p: StatusError(400, message="context too long"), max_retries=3)
    usage = LLMUsage()
    with pytest.raises(LLMError, match="failed after 1 attempt"):
        await llm.complete(MESSAGES, usage)
    assert len(model.prompts) == 1 and usage.retries == 0


async def test_retries_exhausted() -> None:
    llm, model = scripted_llm(lambda p: StatusError(500), max_retries=2)
    with pytest.raises(LLMError, match="failed after 3 attempt"):
        await llm.complete(MESSAGES, LLMUsage())
    assert len(model.prompts) == 3


def test_backoff_respects_retry_after() -> None:
    assert llm_module._retry_after(StatusError(429, {"retry-after": "3"})) == 3.0
    assert llm_module._retry_after(StatusError(429, {"retry-after-ms": "1500"})) == 1.5
    assert llm_module._retry_after(StatusError(429, {"retry-after": "soon"})) is None
    assert llm_module._is_transient(StatusError(429)) and not llm_module._is_transient(StatusError(401))
    assert llm_module._is_transient(TimeoutError())


def test_real_backoff_uses_retry_after_on_429(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert llm_module._backoff(0, StatusError(429, {"retry-after": "7"})) == 7.0
    assert 0 < llm_module._backoff(1, StatusError(503)) <= 1.5


async def test_timeout_becomes_llm_error() -> None:
    llm, model = scripted_llm(lambda p: "late", timeout_s=0.05, max_retries=0)
    model.delay_s = 1.0
    with pytest.raises(LLMError, match="TimeoutError"):
        await llm.complete(MESSAGES, LLMUsage())


async def test_api_key_never_in_error_message() -> None:
    secret = "sk-very-secret-123"
    model = ScriptedChatModel(reply=lambda p: StatusError(401, message=f"bad key {secret}"), prompts=[])
    llm = ChatLLM(ModelSettings(model="m", api_key=secret), role="r", factory=lambda s: model)
    with pytest.raises(LLMError) as info:
        await llm.complete(MESSAGES, LLMUsage())
    assert secret not in str(info.value) and "***" in str(info.value)


async def test_concurrency_is_bounded() -> None:
    llm, model = scripted_llm(lambda p: "x")
    llm.concurrency = 2
    model.delay_s = 0.02
    await asyncio.gather(*(llm.complete([("user", str(i))], LLMUsage()) for i in range(8)))
    assert model.max_in_flight == 2


async def test_usage_uses_server_counts() -> None:
    reply = AIMessage(
        content="hi", usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14}
    )
    llm, _ = scripted_llm(lambda p: reply)
    usage = LLMUsage()
    await llm.complete(MESSAGES, usage)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 3, 14)


async def test_sample_returns_errors_as_values() -> None:
    replies = iter(["one", StatusError(400)])
    llm, _ = scripted_llm(lambda p: next(replies))
    outcomes = await llm.sample(MESSAGES, 2, LLMUsage())
    assert sorted(type(o).__name__ for o in outcomes) == ["LLMError", "Reply"]  # Reply is a str


def test_make_chat_openai_local_endpoint_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    chat = make_chat_openai(ModelSettings(model="smol", base_url="http://127.0.0.1:9/v1"))
    assert chat.openai_api_key.get_secret_value() == "not-needed"
    assert chat.max_tokens == 512 and chat.max_retries == 0


def test_make_chat_openai_max_tokens_in_extra_body() -> None:
    chat = make_chat_openai(
        ModelSettings(
            model="smol", base_url="http://127.0.0.1:9/v1", max_tokens=77, max_tokens_in_extra_body=True
        )
    )
    assert chat.extra_body == {"max_tokens": 77} and chat.max_tokens is None


def test_make_chat_openai_without_any_key_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMUnavailable, match="cannot create the chat client"):
        make_chat_openai(ModelSettings(model="gpt-x"))


async def test_finish_reason_is_kept_and_survives_the_cache(tmp_path: Path) -> None:
    reply = AIMessage(content="<think>cut", response_metadata={"finish_reason": "length"})
    model = ScriptedChatModel(reply=lambda p: reply, prompts=[])
    llm = ChatLLM(
        ModelSettings(model="m"), role="expander", cache=CompletionCache(tmp_path), factory=lambda s: model
    )
    usage = LLMUsage()
    first = await llm.complete(MESSAGES, usage)
    second = await llm.complete(MESSAGES, usage)  # from the cache
    assert first == second == "<think>cut" and usage.cache_hits == 1
    assert first.finish_reason == "length" and second.finish_reason == "length"
    plain, _ = scripted_llm(lambda p: "ok")
    assert (await plain.complete(MESSAGES, LLMUsage())).finish_reason is None
