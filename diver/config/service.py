"""Settings of the adapters and the engine process: limits, the MCP server, the shared engine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from diver.config.base import Section


class LimitSettings(Section):
    max_k: int = Field(1000, ge=1, description="Larger k is capped to this (and said so).")
    max_query_chars: int = Field(20000, ge=1, description="Longer queries are refused.")
    max_documents_per_call: int = Field(1000, ge=1, description="Documents per index call.")
    max_document_bytes: int = Field(5_000_000, ge=1, description="Bytes of text per document.")
    max_metadata_bytes: int = Field(65536, ge=2, description="Bytes of JSON metadata per document.")
    max_file_bytes: int = Field(
        50_000_000, ge=1, description="Bytes of a PDF, Office file or notebook read from a folder (text: max_document_bytes)."
    )
    max_collection_name: int = Field(63, ge=3, le=63, description="Collection name length limit.")


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="HTTP bind address; non-loopback requires auth_token.")
    port: int = Field(8765, ge=0, le=65535, description="HTTP port (0 = any free port).")
    auth_token: SecretStr | None = Field(
        None,
        description="Bearer token for the HTTP transport, which always requires one: when unset (loopback "
        "only) the token in <data_dir>/http-token is used, created 0600 on first start.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names accepted besides the bind address (e.g. the public name of a 0.0.0.0 "
        "bind); other Host headers get 421 (DNS rebinding protection).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins (scheme://host[:port]) allowed besides the server's own; other Origin "
        "headers get 403.",
    )
    allowed_roots: list[Path] = Field(
        default_factory=list, description="index_path may only read under these folders (none = refused)."
    )
    max_path_documents: int = Field(
        100_000, ge=1, description="index_path refuses a folder or .jsonl holding more documents than this."
    )
    max_watches: int = Field(
        8, ge=0, le=256, description="Folders index_path(watch=true) may keep in sync at once (0 = no watching)."
    )
    watch_debounce_ms: int = Field(
        1600, ge=50, le=600_000, description="A watched folder is synced once changes pause this long."
    )
    read_only: bool = Field(
        False, description="Register no write tools (index_*, cancel_index, delete_documents): search only."
    )


class EngineSettings(Section):
    mode: Literal["shared", "local"] = Field(
        "shared",
        description="'shared': every DIVER process on a data directory (MCP servers, CLI, Python) is a client of "
        "one engine process that holds the model, the indexes and the lock; the first client starts it "
        "(socket <data_dir>/engine.sock), it exits when idle. 'local': this process opens the directory "
        "itself, as the only one (others get IndexLocked).",
    )
    idle_timeout_s: float = Field(
        120.0, gt=0, le=86400, description="The shared engine exits this long after its last client left."
    )
    start_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="How long a client waits for the engine to start (model loading)."
    )
    request_timeout_s: float = Field(
        60.0, gt=0, le=86400,
        description="A client gives up (EngineUnresponsive) when the engine sends nothing for this long; a "
        "working engine sends a progress frame every 2 s, so this bounds silence, not the length of a request.",
    )  # fmt: skip


