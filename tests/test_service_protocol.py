"""The engine service's wire format and helpers (no process started here: see test_multiprocess.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from diver.config import load_settings
from diver.errors import CollectionNotFound, EngineSettingsMismatch, StateError
from diver.index.upserts import document_batches
from diver.service import protocol
from diver.service.client import BATCH_BYTES
from diver.service.spawn import clean_stale_files
from diver.text.documents import Document


def test_frames_round_trip_and_errors_keep_their_class_and_text() -> None:
    left, right = socket.socketpair()
    with left, right:
        protocol.send_frame(left, {"op": "search_many", "args": {"queries": ["é" * 3]}})
        assert protocol.recv_frame(right) == {"op": "search_many", "args": {"queries": ["ééé"]}}
        left.close()
        assert protocol.recv_frame(right) is None  # clean end between frames
    error = protocol.error_from_payload(protocol.error_payload(CollectionNotFound("x", ["a"])))
    assert isinstance(error, CollectionNotFound) and str(error) == "unknown collection 'x'. Available: a."
    assert type(protocol.error_from_payload({"type": "KeyError", "message": "m"})) is StateError
    assert isinstance(protocol.error_from_payload({"type": "EngineSettingsMismatch", "message": "m"}),
                      EngineSettingsMismatch)  # fmt: skip


def test_settings_reach_the_engine_whole_but_are_compared_masked(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, embedding={"provider": "openai", "api_key": "sk-secret-1"})
    assert protocol.settings_payload(settings)["embedding"]["api_key"] == "sk-secret-1"
    sections = protocol.index_sections(settings)
    assert "sk-secret-1" not in str(sections) and set(sections) == set(protocol.INDEX_SECTIONS)
    assert sections["cache_dir"] == str(tmp_path / "cache")


def test_socket_path_in_the_data_dir_or_short_under_tmp(tmp_path: Path) -> None:
    assert protocol.socket_path(tmp_path) == tmp_path.resolve() / "engine.sock"
    deep = tmp_path / ("x" * 120)
    assert protocol.socket_path(deep) == protocol.socket_path(deep) != deep / "engine.sock"
    assert len(str(protocol.socket_path(deep))) <= protocol.MAX_UNIX_PATH


def test_stale_files_of_a_dead_pid_are_removed_and_a_live_pid_is_left(tmp_path: Path) -> None:
    import os

    (tmp_path / "engine.sock").write_text("")
    (tmp_path / "engine.pid").write_text("999999999\n")
    assert clean_stale_files(tmp_path) and not (tmp_path / "engine.sock").exists()
    (tmp_path / "engine.sock").write_text("")
    (tmp_path / "engine.pid").write_text(f"{os.getpid()}\n")
    assert not clean_stale_files(tmp_path) and (tmp_path / "engine.sock").exists()


def test_upserts_travel_in_batches_bounded_by_count_and_bytes() -> None:
    docs = [Document(id=f"d{i}", text="x" * 1000) for i in range(10)]
    assert [len(b) for b in document_batches(docs, 4, BATCH_BYTES)] == [4, 4, 2]
    big = [Document(id=f"b{i}", text="y" * (20 << 20)) for i in range(3)]
    assert [len(b) for b in document_batches(big, 512, BATCH_BYTES)] == [1, 1, 1]
