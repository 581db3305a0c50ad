"""HTTP transport guards: bearer token middleware and the loopback rule."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("mcp")

from diver.errors import ConfigError  # noqa: E402
from diver.server.http import BearerAuth, http_app, is_loopback  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1


async def call(app: Any, headers: list[tuple[bytes, bytes]], kind: str = "http") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": kind, "headers": headers}, None, send)
    return sent


@pytest.mark.parametrize("header", [None, b"Bearer wrong", b"Basic c2VjcmV0", b"Bearer secret-token "])
async def test_requests_without_the_token_get_401_and_touch_nothing(header: bytes | None) -> None:
    inner = Recorder()
    headers = [(b"authorization", header)] if header is not None else []
    sent = await call(BearerAuth(inner, "secret-token"), headers)
    assert inner.calls == 0
    assert sent[0]["status"] == 401 and (b"www-authenticate", b'Bearer realm="diver"') in sent[0]["headers"]


async def test_the_right_token_and_lifespan_pass() -> None:
    inner = Recorder()
    app = BearerAuth(inner, "secret-token")
    assert await call(app, [(b"authorization", b"Bearer secret-token")]) == []
    await call(app, [], kind="lifespan")
    assert inner.calls == 2


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")
    with pytest.raises(ConfigError, match="without a bearer token"):
        http_app(None, "0.0.0.0", None)  # type: ignore[arg-type]
