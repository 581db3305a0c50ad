"""The engine's Unix socket on a shared machine (issue 21, items 1, 5 and 8): another local user can
neither stand in for the engine nor talk to it; a stopped engine is reported, not waited on forever;
bad frames close their connection and nothing else."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from users_support import (
    FAKE_ENGINE,
    HEADER,
    PROBE_ENGINE,
    ServiceThread,
    closed_within,
    other_user,  # noqa: F401 - fixture
    read_reply,
    records,
    run_as,
    send_raw,
    shared_dir,  # noqa: F401 - fixture
    start_as,
    stop_as,
    wait_ready,
)

from diver.config import load_settings
from diver.errors import EngineUnresponsive, UnsafePath
from diver.service import protocol, server
from diver.service.client import RemoteEngine
from diver.text.documents import Document

REPO = Path(__file__).resolve().parents[2]


def settings_for(data_dir: Path, **engine: Any) -> Any:
    return load_settings(data_dir=data_dir, embedding={"provider": "hashing"},
                         engine={"mode": "shared", "idle_timeout_s": 20, **engine})  # fmt: skip


def deep_dir(base: Path) -> Path:
    deep = base / ("d" * 60) / ("e" * 60)
    assert len(os.fsencode(str(deep / "engine.sock"))) > protocol.MAX_UNIX_PATH
    return deep


# -- item 1: squatting, impostors, strangers --------------------------------------------------------
def test_socket_folder_squatted_by_another_user_is_refused(
    other_user: str, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The attacker creates <tmp>/diver-<uid> (0777) first and listens at the victim's socket path: the
    victim refuses the folder and sends nothing (before: its hello and documents went to the attacker)."""
    monkeypatch.setattr(tempfile, "tempdir", str(shared_dir))
    data_dir = deep_dir(tmp_path)
    digest = hashlib.sha256(os.fsencode(str(data_dir.resolve()))).hexdigest()[:20]
    sock = shared_dir / f"diver-{os.getuid()}" / f"{digest}.sock"
    record = shared_dir / "record.jsonl"
    fake = start_as(other_user, FAKE_ENGINE, str(sock), str(record), "mkdir")
    try:
        wait_ready(fake)
        assert sock.parent.stat().st_uid != os.getuid()
        with pytest.raises(UnsafePath, match="owned by uid"):
            with RemoteEngine(settings_for(data_dir)) as engine:
                engine.collection("notes", create=True).upsert([Document(id="a", text="the victim's secret")])
        assert records(record) == []  # not even a hello reached the attacker
    finally:
        stop_as(fake)


def test_socket_folder_open_to_others_or_a_symlink_is_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = tmp_path / f"diver-{os.getuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(UnsafePath, match="mode 755"):
        protocol.socket_path(deep_dir(tmp_path))
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePath, match="not a directory"):
        protocol.socket_path(deep_dir(tmp_path))
    folder.unlink()
    assert protocol.socket_path(deep_dir(tmp_path)).parent == folder  # created 0700: accepted
    assert folder.stat().st_mode & 0o777 == 0o700


def test_an_impostor_listening_in_a_shared_data_dir_is_refused(other_user: str, shared_dir: Path) -> None:  # noqa: F811
    """A data dir others may write to (a team folder): the attacker binds engine.sock there first (or
    renames the real one away). The victim checks who listens (SO_PEERCRED) and sends nothing."""
    data_dir = shared_dir / "team"
    data_dir.mkdir()
    data_dir.chmod(0o777)
    record = shared_dir / "record.jsonl"
    fake = start_as(other_user, FAKE_ENGINE, str(data_dir / "engine.sock"), str(record))
    try:
        wait_ready(fake)
        with pytest.raises(UnsafePath, match="runs as uid"):
            with RemoteEngine(settings_for(data_dir)) as engine:
                engine.collection("notes").search("what is secret")
        assert records(record) == []
    finally:
        stop_as(fake)


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceThread]:
    monkeypatch.setattr(server, "HELLO_TIMEOUT_S", 1.0, raising=False)
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 1.0, raising=False)
    monkeypatch.setattr(protocol, "PROGRESS_INTERVAL_S", 0.3, raising=False)  # before its thread starts
    running = ServiceThread(settings_for(tmp_path / "data"))
    try:
        yield running
    finally:
        running.close()


def test_another_user_reaching_the_socket_gets_no_reply(other_user: str, shared_dir: Path,  # noqa: F811
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Even when the socket is reachable (a data dir made 0755, the socket 0666 by hand), the engine
    closes a connection from another uid before reading anything."""
    monkeypatch.setattr(server, "HELLO_TIMEOUT_S", 1.0, raising=False)
    data_dir = shared_dir / "victim"
    data_dir.mkdir()
    running = ServiceThread(settings_for(data_dir))
    try:
        data_dir.chmod(0o755)
        running.path.chmod(0o666)
        args = json.dumps({"version": protocol.PROTOCOL_VERSION, "pid": 1})
        probe = run_as(other_user, PROBE_ENGINE, str(running.path), "hello", args)
        assert probe.stdout.startswith("CLOSED"), probe.stdout + probe.stderr
        assert running.service._requests == 0
    finally:
        running.close()


def test_the_first_request_must_be_hello(service: ServiceThread) -> None:
    with service.connect() as conn:
        send_raw(conn, {"op": "collection_names", "args": {}})
        reply = read_reply(conn)
        assert reply is not None and "first request must be hello" in reply["error"]["message"]
        assert read_reply(conn) is None  # and the connection is closed
    with service.connect() as conn:  # a control hello (no settings) may stop or release, not read data
        send_raw(conn, {"op": "hello", "args": {"version": protocol.PROTOCOL_VERSION, "pid": 1}})
        assert "ok" in (read_reply(conn) or {})
        send_raw(conn, {"op": "get", "args": {"collection": "notes", "doc_id": "a"}})
        assert "needs a hello with this client's settings" in (read_reply(conn) or {})["error"]["message"]


# -- item 5: silence --------------------------------------------------------------------------------
def test_silent_or_half_frame_connections_are_closed(service: ServiceThread) -> None:
    with service.connect() as conn:  # never says hello
        assert closed_within(conn, 5)
    with service.connect() as conn:  # says hello, then a header with no body
        hello = {"version": protocol.PROTOCOL_VERSION, "pid": 1, "sections": service.service.sections}
        send_raw(conn, {"op": "hello", "args": hello})
        assert "ok" in (read_reply(conn) or {})
        conn.sendall(HEADER.pack(100))
        assert closed_within(conn, 5)
    with service.connect() as conn:  # an idle client after hello is kept (its pool connection)
        send_raw(conn, {"op": "hello", "args": hello})
        assert "ok" in (read_reply(conn) or {})
        assert not closed_within(conn, 2.5)


def test_progress_frames_keep_a_long_request_alive(service: ServiceThread, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A request longer than the client's timeout succeeds: the engine's progress frames are its pulse."""
    monkeypatch.setattr(type(service.service), "op_warm",
                        lambda self, conn, collection: time.sleep(4.0), raising=True)  # fmt: skip
    client = settings_for(tmp_path / "data", request_timeout_s=1.5)
    with RemoteEngine(client) as engine:
        started = time.monotonic()
        engine.call("warm", collection="notes")
        assert time.monotonic() - started >= 4.0


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIVER_")}
    env.update(DIVER_DATA_DIR=str(data_dir), DIVER_EMBEDDING__PROVIDER="hashing", HF_HUB_OFFLINE="1",
               DIVER_ENGINE__IDLE_TIMEOUT_S="20", DIVER_ENGINE__REQUEST_TIMEOUT_S="3", **extra)  # fmt: skip
    return env


def diver(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "diver.cli", *args], env=env, cwd=REPO,  # noqa: S603
                          capture_output=True, text=True, timeout=90)  # fmt: skip


@pytest.mark.integration
def test_a_stopped_engine_is_reported_with_its_pid_not_waited_on(tmp_path: Path) -> None:
    """SIGSTOP the engine: search, engine status, engine stop and a local-mode search each end within
    seconds with EngineUnresponsive naming the pid and the fix (before: they hung until SIGCONT)."""
    data_dir = tmp_path / "data"
    # idle timeout well past the stopped phase: the monotonic clock runs while the engine is stopped, so a
    # short one would (rightly) end the engine right after SIGCONT on a slow machine
    settings = settings_for(data_dir, request_timeout_s=3, idle_timeout_s=600)
    with RemoteEngine(settings) as engine:
        engine.collection("notes", create=True).upsert([Document(id="a", text="alpha beta gamma")])
        pid = int(engine.status()["pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(EngineUnresponsive, match=f"pid {pid}.*sent nothing for 3s during hello"):
            RemoteEngine(settings)
        assert time.monotonic() - started < 30
        for args, extra in ((["search", "notes", "alpha"], {}), (["engine", "status"], {}),
                            (["engine", "stop"], {}), (["search", "notes", "alpha"], {"DIVER_ENGINE__MODE": "local"})):  # fmt: skip
            started = time.monotonic()
            done = diver(args, env_for(data_dir, **extra))
            assert done.returncode != 0, (args, done.stdout)
            assert f"pid {pid}" in done.stderr and f"kill -CONT {pid}" in done.stderr, (args, done.stderr[-800:])
            assert time.monotonic() - started < 60
    finally:
        os.kill(pid, signal.SIGCONT)
    with RemoteEngine(settings) as engine:  # resumed: the same engine serves again
        assert engine.status()["pid"] == pid
        engine.stop_engine()


def test_a_release_from_a_client_that_left_is_not_carried_out(tmp_path: Path) -> None:
    """A local Engine asked the (stopped) engine to hand over the directory and gave up; on SIGCONT the
    engine finds that client gone and keeps serving (before: it exited for nobody)."""
    settings = settings_for(tmp_path / "data")
    with RemoteEngine(settings) as engine:
        pid = int(engine.status()["pid"])
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(str(protocol.socket_path(tmp_path / "data")))
    send_raw(conn, {"op": "hello", "args": {"version": protocol.PROTOCOL_VERSION, "pid": os.getpid(),
                                            "sections": protocol.index_sections(settings)}})  # fmt: skip
    assert "ok" in (read_reply(conn) or {})
    os.kill(pid, signal.SIGSTOP)
    try:
        send_raw(conn, {"op": "release", "args": {}})
        conn.close()  # the client gives up on the stopped engine
        time.sleep(0.3)
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.5)
    os.kill(pid, 0)  # still alive
    with RemoteEngine(settings) as engine:
        assert engine.status()["pid"] == pid
        engine.stop_engine()


# -- item 8: bad frames -----------------------------------------------------------------------------
def test_oversized_and_deeply_nested_frames_close_only_their_connection(
    service: ServiceThread, caplog: pytest.LogCaptureFixture
) -> None:
    limit = getattr(service.service, "frame_limit", protocol.MAX_FRAME)
    assert limit < 64 << 20  # bounded by the configured limits (5 MB documents), not 2 GiB
    hello = {"version": protocol.PROTOCOL_VERSION, "pid": 1, "sections": service.service.sections}
    with caplog.at_level(logging.WARNING, logger="diver.service"):
        with service.connect() as conn:
            send_raw(conn, {"op": "hello", "args": hello})
            read_reply(conn)
            conn.sendall(HEADER.pack(300 << 20))  # 300 MB announced: refused before reading it
            assert closed_within(conn, 5)
        with service.connect() as conn:
            send_raw(conn, {"op": "hello", "args": hello})
            read_reply(conn)
            nested = b"[" * 100_000 + b"]" * 100_000
            conn.sendall(HEADER.pack(len(nested)) + nested)
            assert closed_within(conn, 5)
    text = caplog.text
    assert "frame of 314572800 bytes refused" in text and "nested too deeply" in text
    assert "Traceback" not in text and "RecursionError" not in text
    with service.connect() as conn:  # the engine still serves
        send_raw(conn, {"op": "hello", "args": hello})
        assert "ok" in (read_reply(conn) or {})
