"""The HTTP transport on a shared machine (issue 21, items 2 and 3), with real server processes: another
local user reaches 127.0.0.1 but not the tools (a token is always required; the generated one sits in a
0600 file), and a DNS-rebinding Host/Origin pair is refused on every loopback address."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from reliability_support import SECRET_TOKEN, free_port
from users_support import other_user, run_as, shared_dir  # noqa: F401 - fixtures

pytest.importorskip("mcp")
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

pytestmark = pytest.mark.integration
DELETE = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
          "params": {"name": "delete_documents", "arguments": {"collection": "notes", "ids": ["a"]}}}  # fmt: skip

ATTACKER = r'''
import json, sys, urllib.request, urllib.error
url, token_file, body = sys.argv[1], sys.argv[2], sys.argv[3].encode()
try:
    open(token_file).read(); print("TOKEN-READ")
except OSError as exc:
    print("TOKEN-DENIED", type(exc).__name__)
req = urllib.request.Request(url, data=body, headers={"content-type": "application/json",
                             "accept": "application/json, text/event-stream"})
try:
    with urllib.request.urlopen(req, timeout=10) as r: print("STATUS", r.status)
except urllib.error.HTTPError as exc:
    print("STATUS", exc.code)
'''


def serve(data_dir: Path, log: Path, host: str, port: int, **env_extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update(DIVER_DATA_DIR=str(data_dir), DIVER_EMBEDDING__PROVIDER="hashing", HF_HUB_OFFLINE="1", **env_extra)
    with log.open("wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "diver.server", "--transport", "http", "--host", host,  # noqa: S603
                                 "--port", str(port)], env=env, stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip


def post(url: str, headers: dict[str, str], body: dict[str, object] = DELETE) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "content-type": "application/json", "accept": "application/json, text/event-stream", **headers})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            post(url, {})
            return
        except OSError:
            assert proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.3)
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def test_without_a_configured_token_other_users_get_401_and_the_owner_uses_the_token_file(
    other_user: str, shared_dir: Path  # noqa: F811
) -> None:
    data_dir = shared_dir / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # traversable by others (a pre-existing data dir): the token file itself is 0600
    port, log = free_port(), shared_dir / "server.log"
    url = f"http://127.0.0.1:{port}/mcp"
    proc = serve(data_dir, log, "127.0.0.1", port)
    try:
        wait_up(url, proc, log)
        token_file = data_dir / "http-token"
        assert f"token created in {token_file}" in log.read_text()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        attack = run_as(other_user, ATTACKER, url, str(token_file), json.dumps(DELETE))
        assert "TOKEN-DENIED PermissionError" in attack.stdout, attack.stdout + attack.stderr
        assert "STATUS 401" in attack.stdout, attack.stdout + attack.stderr
        token = token_file.read_text().strip()
        http = create_mcp_http_client(headers={"authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            indexed = await client.call_tool("index_documents", {
                "collection": "notes", "documents": [{"id": "a", "text": "owner's note"}]})  # fmt: skip
            assert not indexed.is_error
    finally:
        stop(proc)
    assert token not in log.read_text()


@pytest.mark.parametrize("host", ["127.0.0.2", "127.0.0.1"])
def test_dns_rebinding_host_and_origin_are_refused_on_any_loopback_address(tmp_path: Path, host: str) -> None:
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://{host}:{port}/mcp"
    proc = serve(tmp_path / "data", log, host, port, DIVER_SERVER__AUTH_TOKEN=SECRET_TOKEN)
    auth = {"authorization": f"Bearer {SECRET_TOKEN}"}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    try:
        wait_up(url, proc, log)
        assert post(url, {**auth, "host": f"evil.example:{port}", "origin": f"http://evil.example:{port}"},
                    initialize) == 421  # fmt: skip
        assert post(url, {**auth, "origin": f"http://evil.example:{port}"}, initialize) == 403
        assert post(url, {"origin": f"http://evil.example:{port}"}, initialize) == 403  # before the token
        assert post(url, {**auth, "origin": f"http://{host}:{port}"}, initialize) == 200
        assert post(url, auth, initialize) == 200
    finally:
        stop(proc)
