"""pymilvus behind DIVER's errors: the client (reloading a released collection), typed errors, name escaping,
index and search parameters, row iteration. Shared by the Milvus backend's vector store and chunk rows."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from diver.config import StoreSettings
from diver.errors import ConfigError, MissingDependency, StateError, VectorStoreUnavailable, require

log = logging.getLogger(__name__)
PAGE = 1000  # rows per insert / get / delete request
MAX_TOPK = 16384  # Milvus' limit on one search's results (and on offset + limit of a query)
_UNAVAILABLE_WORDS = ("unavailable", "connect", "deadline", "timeout", "timed out", "socket closed")
# pymilvus pings every 10 s, idle or not. A gRPC server with gRPC's default policy (milvus-lite's; any server
# not told otherwise) accepts one ping per 5 min with calls in flight and none while idle: after three early
# pings it answers GOAWAY "too_many_pings", and a call or reconnect at that moment fails with UNAVAILABLE.
# No idle pings, and none more often than that policy allows; calls are bounded by store.milvus_timeout_s.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600_000, "grpc.keepalive_permit_without_calls": 0}


def escape_name(name: str) -> str:
    """A DIVER name (letters, digits, '-', '_') as a Milvus name fragment (letters, digits, '_'), injectively."""
    out = []
    for char in name:
        if char == "_":
            out.append("_u")
        elif char == "-":
            out.append("_d")
        elif char.isascii() and char.isalnum():
            out.append(char)
        else:
            raise ConfigError(f"{name!r} cannot be a Milvus collection name (ASCII letters, digits, '-', '_')")
    return "".join(out)


def pymilvus() -> Any:
    return require("pymilvus", "milvus", "store.backend = 'milvus'")


def open_client(settings: StoreSettings) -> Any:
    """A ``MilvusClient`` for ``store.milvus_uri``; VectorStoreUnavailable when the server cannot be reached."""
    uri = settings.milvus_uri
    if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
        raise ConfigError(f"store.milvus_uri must be http(s)://host:port, got {uri!r}")
    module = pymilvus()
    kwargs: dict[str, Any] = {"uri": uri, "timeout": settings.milvus_timeout_s, "grpc_options": dict(GRPC_OPTIONS)}
    if settings.milvus_token is not None:
        kwargs["token"] = settings.milvus_token.get_secret_value()
    if settings.milvus_database:
        kwargs["db_name"] = settings.milvus_database
    with unavailable_as_typed(uri, "connect"):
        return ReloadingClient(module.MilvusClient(**kwargs))


class ReloadingClient:
    """A ``MilvusClient`` whose calls on a released collection load it and retry once: a restarted
    ``milvus-lite server`` (or a collection released by an operator) answers again instead of failing."""

    _ON_COLLECTION = frozenset({"query", "search", "get", "insert", "upsert", "delete", "query_iterator"})

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self._ON_COLLECTION:
            return method

        def call(collection: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(collection, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - only "not loaded" is handled; the rest re-raised as is
                if not _not_loaded(exc):
                    raise
                self._client.load_collection(collection)
                return method(collection, *args, **kwargs)

        return call


def _not_loaded(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "MilvusException" and ("released" in text or "not loaded" in text)


def is_unavailable(exc: BaseException) -> bool:
    """True for the errors of an unreachable or restarting server (gRPC transport errors, pymilvus' own)."""
    names = {type(exc).__name__, *(t.__name__ for t in type(exc).__mro__)}
    if names & {"MilvusUnavailableException", "RpcError", "ConnectionError", "OSError"}:
        return True
    text = str(exc).lower()
    return "MilvusException" in names and any(word in text for word in _UNAVAILABLE_WORDS)


@contextmanager
def unavailable_as_typed(name: str, what: str) -> Iterator[None]:
    """Milvus errors as DIVER's: VectorStoreUnavailable when the server is down, else StateError."""
    try:
        yield
    except (StateError, ConfigError, MissingDependency):
        raise
    except Exception as exc:  # noqa: BLE001 - pymilvus and grpc raise many untyped errors; re-raised typed
        if is_unavailable(exc):
            raise VectorStoreUnavailable(f"Milvus ({name}) is unreachable ({what}): {exc}") from exc
        module = type(exc).__module__.split(".")[0]
        if module in {"pymilvus", "grpc", "milvus_lite"}:
            raise StateError(f"Milvus ({name}) refused {what}: {exc}") from exc
        raise


def string_list(values: Sequence[str]) -> str:
    """A Milvus list literal of strings."""
    return "[" + ",".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def metric(space: str) -> str:
    return {"cosine": "COSINE", "ip": "IP", "l2": "L2"}[space]


def dense_index(settings: StoreSettings) -> dict[str, Any]:
    """``add_index`` arguments of a dense vector field from the settings."""
    return {"index_type": settings.milvus_index, "metric_type": metric(settings.hnsw_space),
            "params": dict(settings.milvus_index_params)}  # fmt: skip


def search_params(settings: StoreSettings, limit: int) -> dict[str, Any]:
    params = dict(settings.milvus_search_params)
    if settings.milvus_index == "HNSW":
        params["ef"] = max(int(params.get("ef", 0)), min(limit, MAX_TOPK))  # HNSW needs ef >= limit
    return {"metric_type": metric(settings.hnsw_space), "params": params}


def similarity(distance: float, space: str) -> float:
    """DIVER's similarity from Milvus' score: COSINE and IP are similarities already; L2 is a squared distance."""
    return -distance if space == "l2" else distance


def iterate(client: Any, collection: str, expr: str, fields: list[str], level: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every row matching ``expr`` (a query iterator: no offset limit)."""
    with unavailable_as_typed(collection, "read"):
        iterator = client.query_iterator(collection, batch_size=PAGE, filter=expr, output_fields=fields, **level)
    try:
        while True:
            with unavailable_as_typed(collection, "read"):
                page = iterator.next()
            if not page:
                return
            yield from page
    finally:
        iterator.close()
