"""The limits hold wherever documents enter the engine (issue 21, item 6): ``Collection.upsert`` of the
Python API, and the engine process's ``upsert`` through ``RemoteCollection``, not only ``make_document``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from diver.config import load_settings
from diver.errors import InputError
from diver.index.engine import Engine
from diver.service.client import RemoteEngine
from diver.text.documents import Document

BAD = [
    (Document(id="huge", text="x" * 20_000_000), "text is 20000000 bytes; the limit is 5000000"),
    (Document(id="meta", text="fine", metadata={"k": "v" * 10_000_000}), "metadata is 10000009 bytes of JSON"),
    (Document(id="empty", text=""), "text is empty"),
    (Document(id="blank", text=" \n\t "), "text is empty"),
    (Document(id="nul", text="before\x00after"), "NUL"),
    (Document(id="surrogate", text="half \ud800 pair"), "not valid unicode"),
]


def settings_for(data_dir: Path, mode: str) -> Any:
    return load_settings(data_dir=data_dir, embedding={"provider": "hashing"},
                         engine={"mode": mode, "idle_timeout_s": 5})  # fmt: skip


@pytest.mark.parametrize(("bad", "needle"), BAD, ids=[d.id for d, _ in BAD])
def test_the_python_api_refuses_what_the_limits_refuse(tmp_path: Path, bad: Document, needle: str) -> None:
    with Engine(settings_for(tmp_path, "local")) as engine:
        notes = engine.collection("notes", create=True)
        with pytest.raises(InputError, match=needle):
            notes.upsert([Document(id="ok", text="a fine document"), bad])
        assert notes.info().documents == 0  # the batch holding it is refused whole


def test_the_engine_process_refuses_them_too(tmp_path: Path) -> None:
    with RemoteEngine(settings_for(tmp_path, "shared")) as engine:
        notes = engine.collection("notes", create=True)
        for bad, needle in BAD:
            with pytest.raises(InputError, match=needle):
                notes.upsert([bad])
            with pytest.raises(InputError, match=needle):  # a client that skips its own check: the engine
                engine.call("upsert", collection="notes", documents=[bad.model_dump()])
        assert notes.info().documents == 0
        engine.stop_engine()
