"""Two data directories on one real Chroma server (`chroma run`) never touch each other's vectors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, stop, wait_for_http

pytestmark = pytest.mark.integration

DOCS = {
    "a": [("a-pyth", "Pythagorean theorem: in a right triangle the hypotenuse squared is the sum")],
    "b": [("b-euler", "Euler formula for planar graphs: vertices minus edges plus faces is two")],
}


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `chroma run` server on a free loopback port, persisting to a temporary folder."""
    cli = shutil.which("chroma", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("the `chroma` CLI (shipped by the chromadb wheel) is not installed")
    root = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # noqa: S603 - our own venv's CLI, loopback only
            [cli, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(root / "data")],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, 60, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _settings(tmp_path: Path, which: str, url: str):
    from tests_support import make_settings

    return make_settings(tmp_path / which, store={"chroma_url": url})


def _documents(which):
    from diver.text.documents import Document

    base = DOCS[which]
    return [Document(id=f"{doc_id}-{i}", text=f"{text} ({i})") for doc_id, text in base for i in range(4)]


def test_two_data_dirs_share_one_server_without_touching_each_other(tmp_path, chroma_url):
    from diver.engine import Engine

    first, second = _settings(tmp_path, "a", chroma_url), _settings(tmp_path, "b", chroma_url)
    with Engine(first) as eng_a, Engine(second) as eng_b:
        col_a, col_b = eng_a.collection("notes", create=True), eng_b.collection("notes", create=True)
        col_a.upsert(_documents("a"))
        col_b.upsert(_documents("b"))
        assert col_a.meta["store_name"] != col_b.meta["store_name"]
        assert (col_a.store.count(), col_b.store.count()) == (4, 4)
        before_b = [h.id for h in col_b.search("planar graph faces", k=4, mode="dense").hits]
        assert sorted(before_b) == sorted(d.id for d in _documents("b"))

        col_a.catalog.set_meta("dirty", "1")  # a crash rebuild in A ...
    with Engine(first) as eng_a:
        col_a = eng_a.collection("notes")
        assert col_a.store.count() == 4
        eng_a.drop("notes")  # ... and a drop in A
        assert eng_a.collection_names() == []
    with Engine(second) as eng_b:
        col_b = eng_b.collection("notes")
        assert col_b.store.count() == 4  # B's vectors are intact
        hits = col_b.search("planar graph faces", k=4, mode="hybrid").hits
        assert sorted(h.id for h in hits) == sorted(before_b)
        assert all("dense" in h.scores for h in hits)
        assert col_b.meta["store_name"] in eng_b.backend.names()
        eng_b.drop("notes")
        assert not [n for n in eng_b.backend.names() if n.startswith(eng_b.store_id)]
