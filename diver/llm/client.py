"""Chat-model access for the LLM stages: a lazy ChatOpenAI factory, a disk cache, a concurrency limit,
retries with backoff, timeouts and token accounting.

Nothing here constructs a client until a stage actually sends a request, so importing this module and
building ``ChatLLM`` objects is free even without the ``llm`` extra installed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from diver.cache import CompletionCache, stable_key
from diver.config import DiverSettings, ModelSettings
from diver.errors import LLMError, LLMUnavailable, MissingDependency, require
from diver.text.tokens import approx_tokens

log = logging.getLogger(__name__)

Message = tuple[str, str]
"""(role, content); role is 'system', 'user' or 'assistant'."""

ChatFactory = Callable[[ModelSettings], Any]
"""Builds a langchain ``BaseChatModel`` from model settings (tests pass fake chat models)."""

_LOCAL_DUMMY_KEY = "not-needed"
_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 120.0
_CACHE_VERSION = "chat-v1"


class Reply(str):
    """A completion's text (a ``str``) that also carries the server's ``finish_reason`` ('stop', 'length',
    ...; None when the server or a fake model did not say)."""

    finish_reason: str | None

    def __new__(cls, text: str, finish_reason: str | None = None) -> Reply:
        reply = super().__new__(cls, text)
        reply.finish_reason = finish_reason
        return reply


class LLMUsage(BaseModel):
    """Calls and tokens spent by one stage (or one whole query, when added up)."""

    calls: int = Field(0, description="Requests answered by the endpoint (after retries).")
    cache_hits: int = Field(0, description="Completions served from the disk cache (no request sent).")
    failures: int = Field(0, description="Calls that failed after all retries.")
    retries: int = Field(0, description="Extra attempts made after transient errors.")
    prompt_tokens: int = Field(
        0, description="Prompt tokens of live calls (server-reported, else estimated)."
    )
    completion_tokens: int = Field(0, description="Completion tokens of live calls.")
    cached_tokens: int = Field(0, description="Prompt + completion tokens of cached completions (not spent).")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(
            **{name: getattr(self, name) + getattr(other, name) for name in LLMUsage.model_fields}
        )


def make_chat_openai(settings: ModelSettings) -> Any:
    """ChatOpenAI for any OpenAI-compatible endpoint. Our own retry loop wraps it (max_retries=0)."""
    module = require("langchain_openai", extra="llm", purpose="LLM query expansion and reranking")
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    if key is None and settings.base_url:
        # A local server needs no key; never fall back to OPENAI_API_KEY and leak it to another host.
        key = _LOCAL_DUMMY_KEY
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "base_url": settings.base_url,
        "temperature": settings.temperature,
        "timeout": settings.timeout_s,
        "max_retries": 0,
    }
    if key is not None:
        kwargs["api_key"] = key
    if settings.max_tokens_in_extra_body:
        kwargs["extra_body"] = {"max_tokens": settings.max_tokens}
    else:
        kwargs["max_tokens"] = settings.max_tokens
    try:
        return module.ChatOpenAI(**kwargs)
    except Exception as exc:  # noqa: BLE001 - openai raises a bare OpenAIError for a missing key
        raise LLMUnavailable(
            _scrub(f"cannot create the chat client for {settings.model!r}: {exc}", key)
        ) from exc


_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _limiter(concurrency: int) -> asyncio.Semaphore:
    """One semaphore per event loop and limit, shared by every stage running in that loop."""
    per_loop = _LIMITERS.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(concurrency, asyncio.Semaphore(concurrency))


@lru_cache(maxsize=8)
def _open_cache(path: Path) -> CompletionCache:
    return CompletionCache(path)


def open_completion_cache(settings: DiverSettings) -> CompletionCache | None:
    """The process-wide LLM completion cache of these settings, or None when caching is off."""
    return _open_cache(settings.resolved_cache_dir) if settings.llm.cache else None


class ChatLLM:
    """One configured chat model. ``complete`` returns text or raises ``LLMError``; never caches failures."""

    def __init__(
        self,
        settings: ModelSettings,
        *,
        role: str,
        concurrency: int = 8,
        cache: CompletionCache | None = None,
        factory: ChatFactory | None = None,
    ) -> None:
        if not settings.model:
            raise LLMUnavailable(f"no {role} model configured (set llm.{role}.model)")
        self.settings = settings
        self.role = role
        self.concurrency = concurrency
        self._cache = cache
        self._factory = factory or make_chat_openai
        self._model: Any | None = None
        self.sampling: dict[str, float] = {}  # extra sampling parameters sent with each call (e.g. top_p)

    @property
    def label(self) -> str:
        return f"{self.role} model {self.settings.model!r} at {self.settings.base_url or 'the OpenAI API'}"

    def prepare(self) -> None:
        """Build the client now (call from a worker thread: construction may read files)."""
        self._client()

    def _client(self) -> Any:
        if self._model is None:
            model = self._factory(self.settings)
            self._model = model.bind(**self.sampling) if self.sampling else model
        return self._model

    async def context_window(self) -> tuple[int, str]:
        """(the model's context in tokens, its source): ``context_window`` when set, else what the endpoint
        reports (vLLM ``/v1/models`` ``max_model_len``, asked once per process), else 8192."""
        from diver.llm.context import context_window

        return await asyncio.to_thread(context_window, self.settings)

    def with_sampling(self, temperature: float | None = None, max_tokens: int | None = None,
                      **sampling: float | None) -> ChatLLM:  # fmt: skip
        """A copy of this model (same endpoint, limiter, cache) that samples with these parameters (None
        keeps the model's own)."""
        update: dict[str, Any] = {}
        if temperature is not None:
            update["temperature"] = temperature
        if max_tokens is not None:
            update["max_tokens"] = max_tokens
        clone = ChatLLM(
            self.settings.model_copy(update=update),
            role=self.role,
            concurrency=self.concurrency,
            cache=self._cache,
            factory=self._factory,
        )
        clone.sampling = {name: value for name, value in sampling.items() if value is not None}
        return clone

    def cache_key(self, messages: Sequence[Message], sample: int, n: int) -> str:
        s = self.settings
        params: dict[str, Any] = {"temperature": s.temperature, "max_tokens": s.max_tokens, "n": n, "sample": sample}
        params.update(self.sampling)  # empty for the existing stages: their keys are unchanged
        return stable_key(_CACHE_VERSION, s.model, s.base_url, [list(m) for m in messages], params)

    async def complete(
        self, messages: Sequence[Message], usage: LLMUsage, *, sample: int = 0, n: int = 1
    ) -> Reply:
        """One completion (sample ``sample`` of ``n``), from the cache when possible."""
        key = self.cache_key(messages, sample, n) if self._cache is not None else ""
        if self._cache is not None:  # sqlite I/O off the event loop
            hit = await asyncio.to_thread(self._cache.get, key)
            if isinstance(hit, dict) and isinstance(hit.get("text"), str):
                usage.cache_hits += 1
                usage.cached_tokens += int(hit.get("prompt_tokens", 0)) + int(hit.get("completion_tokens", 0))
                return Reply(hit["text"], hit.get("finish_reason"))
        async with _limiter(self.concurrency):
            reply, prompt_tokens, completion_tokens = await self._call_with_retries(messages, usage)
        usage.calls += 1
        usage.prompt_tokens += prompt_tokens
        usage.completion_tokens += completion_tokens
        if self._cache is not None and reply.strip():
            value = {"text": str(reply), "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "finish_reason": reply.finish_reason}  # fmt: skip
            await asyncio.to_thread(self._cache.put, key, value)
        return reply

    async def sample(self, messages: Sequence[Message], n: int, usage: LLMUsage) -> list[Reply | LLMError]:
        """``n`` independent completions; failed ones come back as ``LLMError`` values."""
        outcomes = await asyncio.gather(
            *(self.complete(messages, usage, sample=i, n=n) for i in range(n)), return_exceptions=True
        )
        results: list[Reply | LLMError] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, LLMError):
                raise outcome
            results.append(outcome)
        return results

    async def _call_with_retries(
        self, messages: Sequence[Message], usage: LLMUsage
    ) -> tuple[Reply, int, int]:
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                reply = await asyncio.wait_for(
                    self._client().ainvoke(list(messages)), timeout=self.settings.timeout_s
                )
                return _reply_text_and_usage(reply, messages)
            except (LLMError, MissingDependency):
                usage.failures += 1
                raise
            except Exception as exc:  # noqa: BLE001 - every client error becomes an LLMError below
                if attempt + 1 < attempts and _is_transient(exc):
                    delay = _backoff(attempt, exc)
                    usage.retries += 1
                    log.warning("%s: %s, retrying in %.1fs", self.label, type(exc).__name__, delay)
                    await asyncio.sleep(delay)
                    continue
                usage.failures += 1
                detail = _scrub(f"{type(exc).__name__}: {exc}", self._secret())
                raise LLMError(f"{self.label} failed after {attempt + 1} attempt(s): {detail}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _secret(self) -> str | None:
        return self.settings.api_key.get_secret_value() if self.settings.api_key is not None else None


def _reply_text_and_usage(reply: Any, messages: Sequence[Message]) -> tuple[Reply, int, int]:
    content = getattr(reply, "content", reply)
    if isinstance(content, list):  # content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    text = str(content)
    meta = getattr(reply, "usage_metadata", None) or {}
    prompt = int(meta.get("input_tokens") or 0) or sum(approx_tokens(c) + 4 for _, c in messages)
    completion = int(meta.get("output_tokens") or 0) or approx_tokens(text)
    response_meta = getattr(reply, "response_metadata", None)
    finish = response_meta.get("finish_reason") if isinstance(response_meta, dict) else None
    return Reply(text, finish if isinstance(finish, str) else None), prompt, completion


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    # by class name along the MRO: langchain-openai re-raises openai's errors as subclasses
    # (OpenAIConnectionError, OpenAITimeoutError), and neither package is imported here
    transient = {"APITimeoutError", "APIConnectionError", "ConnectError", "ReadTimeout"}
    if any(cls.__name__ in transient for cls in type(exc).__mro__):
        return True
    status = _status(exc)
    return status is not None and (status in {408, 409, 425, 429} or status >= 500)


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return min(_MAX_RETRY_AFTER_S, max(0.0, float(value) * scale))
        except ValueError:
            log.debug("unparseable %s header %r", name, value)
    return None


def _backoff(attempt: int, exc: BaseException) -> float:
    hinted = _retry_after(exc) if _status(exc) == 429 else None
    if hinted is not None:
        return hinted
    return float(min(_MAX_BACKOFF_S, 0.5 * 2**attempt) * (0.75 + 0.5 * random.random()))  # noqa: S311 - jitter


def _scrub(message: str, secret: str | None) -> str:
    return message.replace(secret, "***") if secret and secret != _LOCAL_DUMMY_KEY else message


def build_llm(settings: DiverSettings, role: str, factory: ChatFactory | None = None) -> ChatLLM | None:
    """The expander or reranker model of ``settings``, or None when that role has no model configured.
    Prompt templates come from ``prompts.dir`` first (checked here, once per folder)."""
    from diver.llm.prompts import use_prompt_dir

    use_prompt_dir(settings.prompts.dir)
    model_settings: ModelSettings = getattr(settings.llm, role)
    if not model_settings.model:
        return None
    return ChatLLM(
        model_settings,
        role=role,
        concurrency=settings.llm.concurrency,
        cache=open_completion_cache(settings),
        factory=factory,
    )
