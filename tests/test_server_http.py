"""HTTP transport guards: bearer token middleware, the token rule, Host/Origin checks, the token file."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from diver.errors import ConfigError  # noqa: E402
from diver.server.http import (  # noqa: E402
    BearerAuth,
    HostOriginGuard,
    allowed_hosts,
    allowed_origins,
    http_app,
    is_loopback,
    resolve_token,
    token_file_token,
)


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


def test_loopback_rule_and_a_token_always(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")
    with pytest.raises(ConfigError, match="without a bearer token"):
        resolve_token(None, "0.0.0.0", tmp_path / "data")
    with pytest.raises(ConfigError, match="needs a bearer token"):
        http_app(None, "127.0.0.1", "")  # type: ignore[arg-type]
    assert resolve_token("configured", "0.0.0.0", tmp_path / "data") == "configured"


def test_a_generated_token_is_kept_in_a_private_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "fresh" / "data"
    token = resolve_token(None, "127.0.0.2", data_dir)
    path = data_dir / "http-token"
    assert len(token) >= 32 and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert str(path) in capsys.readouterr().err and token not in capsys.readouterr().err
    assert token_file_token(data_dir) == (token, path, False)  # kept across restarts
    path.chmod(0o644)  # readable by others: not trusted, replaced
    again, _, created = token_file_token(data_dir)
    assert created and again != token and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "192.0.2.7"])
async def test_host_and_origin_are_checked_on_every_bind_address(bind: str) -> None:
    hosts = allowed_hosts(bind, ["diver.example"])
    guard = HostOriginGuard(Recorder(), hosts, allowed_origins(hosts, ["https://app.example:3000"]))
    own = f"[{bind}]" if ":" in bind else bind
    if bind == "0.0.0.0":
        own = "127.0.0.1"
    ok = [(b"host", f"{own}:8765".encode())]
    assert await call(guard, ok) == []
    assert await call(guard, [(b"host", b"diver.example")]) == []
    assert await call(guard, [*ok, (b"origin", f"http://{own}:8765".encode())]) == []
    assert await call(guard, [*ok, (b"origin", b"https://app.example:3000")]) == []
    rebinding = [(b"host", b"evil.example:8765"), (b"origin", b"http://evil.example:8765")]
    assert (await call(guard, rebinding))[0]["status"] == 421
    assert (await call(guard, [*ok, (b"origin", b"http://evil.example:8765")]))[0]["status"] == 403
    assert (await call(guard, [*ok, (b"origin", b"https://app.example:4000")]))[0]["status"] == 403
    assert (await call(guard, []))[0]["status"] == 421  # no Host at all
    assert guard.app.calls == 4
