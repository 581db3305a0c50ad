"""The tools that change collections (not registered at all on a read-only server): index_documents,
index_path (a background job when it takes more than a few seconds), index_status, cancel_index,
delete_documents."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from diver.errors import DiverError, InputError
from diver.index.engine import validate_collection_name
from diver.index.jobs import IndexJob
from diver.server.errors import in_thread, to_mcp_error
from diver.server.models import DeleteOutput, DocumentInput, IndexOutput, IndexPathOutput, JobOutput
from diver.server.progress import ProgressReporter
from diver.server.state import ServerState, state_of
from diver.text.documents import Document, make_document
from diver.text.ingest import confine_path

Collection = Annotated[str, Field(description="Collection name (see list_collections).")]
Job = Annotated[str, Field(description="Job id returned by index_path.")]
Globs = Annotated[list[str] | None, Field(max_length=100, description="Folder: gitignore-style globs.")]
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
FOREGROUND_S = 3.0
"""index_path answers with the result when the job ends within this many seconds, else with its id."""
POLL_S = 0.25


def _validate_documents(state: ServerState, documents: list[DocumentInput]) -> list[Document]:
    limits = state.settings.limits
    if not documents:
        raise InputError("documents is empty: give at least one {id, text} object")
    if len(documents) > limits.max_documents_per_call:
        raise InputError(
            f"{len(documents)} documents in one call; the limit is {limits.max_documents_per_call}: split them"
        )
    docs, errors = [], []
    for item in documents:
        try:
            size = len(json.dumps(item.metadata, ensure_ascii=False).encode("utf-8"))
            if size > limits.max_metadata_bytes:
                raise InputError(f"document {item.id!r}: metadata is {size} bytes; the limit is "
                                 f"{limits.max_metadata_bytes}")  # fmt: skip
            docs.append(make_document(item.id, item.text, item.metadata, max_bytes=limits.max_document_bytes))
        except (InputError, TypeError, ValueError) as exc:
            errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InputError("nothing was indexed: " + "; ".join(errors[:5]) + more)
    return docs


def _index_output(report: Any, skipped: list[str]) -> IndexOutput:
    data = report.model_dump()
    data["skipped"] = list(data.get("skipped") or []) + skipped
    return IndexOutput.model_validate(data)


async def _index(state: ServerState, ctx: Context, collection: str, docs: list[Document]) -> Any:
    reporter = ProgressReporter(ctx)

    def upsert() -> Any:
        col = state.engine.collection(collection, create=True)
        emit = reporter.emit_from_thread
        return col.upsert(
            docs, total=len(docs), on_progress=lambda d, t: emit({"event": "indexed", "done": d, "total": t})
        )

    return await reporter.run(lambda: in_thread(upsert), f"indexing {len(docs)} documents", "indexing done")


def _path_output(job: IndexJob) -> IndexPathOutput:
    snap = job.snapshot()
    if snap["state"] == "failed" and not snap["documents_done"]:
        reasons = "; ".join(e.removeprefix("skipped ") for e in snap["errors"][:5])
        raise ToolError(f"nothing indexed from {job.path!r}: {reasons or 'no supported files found'}")
    skipped = [e.removeprefix("skipped ") for e in snap["errors"]]
    return IndexPathOutput(
        collection=job.collection, added=snap["added"], replaced=snap["replaced"], unchanged=snap["unchanged"],
        chunks=snap["chunks"], duplicate_ids=list(job.duplicate_ids), skipped=skipped, seconds=snap["elapsed_s"],
        done=snap["state"] != "running", job=job.id, moved=snap["moved"], removed=snap["removed"],
        changes=job.changes,
    )  # fmt: skip


async def _follow(ctx: Context, job: IndexJob, until: float | None) -> None:
    """Report the job's progress until it ends or ``until`` (monotonic) passes."""
    last = -1
    count = 0
    while job.busy and (until is None or time.monotonic() < until):
        snap = job.snapshot()
        if snap["documents_done"] != last:
            last = snap["documents_done"]
            count += 1
            await ctx.report_progress(count, None, f"indexed {last}/{snap['files'] or '?'} documents")
        await anyio.sleep(POLL_S)


def _start(state: ServerState, collection: str, path: str, include: list[str] | None, exclude: list[str] | None,
           dry_run: bool, watch: bool) -> IndexJob:  # fmt: skip
    """Start index_path's job: one sync (or plan), or a watch of a folder."""
    if not watch:
        return state.jobs.start(collection, path, lambda: state.read_path(path, include, exclude), dry_run=dry_run)
    if dry_run:
        raise InputError("dry_run and watch exclude each other")
    server = state.settings.server
    folder = confine_path(path, [Path(p) for p in server.allowed_roots])
    if not folder.is_dir():
        raise InputError(f"only a folder can be watched; {path!r} is a file")
    reader = lambda scope: state.read_path(path, include, exclude, scope)  # noqa: E731
    return state.jobs.start_watch(collection, path, reader, folder, server.watch_debounce_ms, server.max_watches)


# Over 60 lines: the MCP tools are declared inside (each one is its own short function).
def register_write_tools(server: MCPServer) -> None:
    @server.tool(annotations=WRITES)
    async def index_documents(
        collection: Annotated[
            str, Field(description="Collection name; created if missing (3-63 of A-Z a-z 0-9 _ -).")
        ],
        documents: Annotated[list[DocumentInput], Field(description="Documents to add or replace, by id.")],
        ctx: Context,
    ) -> IndexOutput:
        """Add or replace documents in a collection (created if missing), then they are searchable at once.

        Re-sending an unchanged document costs nothing. Invalid documents are reported and nothing is
        indexed. Metadata can be filtered on in search (`where`); a `source` key (path or URL) is cited."""
        state = state_of(ctx)
        docs = await in_thread(_validate_documents, state, documents)
        return _index_output(await _index(state, ctx, collection, docs), [])

    @server.tool(annotations=WRITES)
    async def index_path(
        collection: Annotated[str, Field(description="Collection name; created if missing.")],
        path: Annotated[
            str,
            Field(description="A folder (synced) or file (text, Markdown, reST, HTML, code, PDF, notebooks, "
                  "Office), or a .jsonl with {id, text, metadata} per line; under the server's allowed roots."),
        ],  # fmt: skip
        ctx: Context,
        wait: Annotated[bool, Field(description="Wait until done (progress notifications meanwhile).")] = False,
        include: Globs = None,
        exclude: Globs = None,
        dry_run: Annotated[bool, Field(description="Only list the changes.")] = False,
        watch: Annotated[bool, Field(description="Then keep the folder in sync until cancel_index(job).")] = False,
    ) -> IndexPathOutput:
        """Index files from the server's disk (only under its configured allowed roots).

        A folder is synced (changed files re-indexed, deleted ones removed, renamed ones moved; .gitignore,
        hidden folders, node_modules skipped); its files get their relative path as id. Returns the result
        when it finishes within a few seconds; otherwise `done: false` and a `job` id at once, and indexing
        goes on in the background: poll index_status(job), stop with cancel_index(job) (committed batches
        stay searchable). Skipped files are listed with the reason, unsupported ones counted per extension."""
        state = state_of(ctx)
        try:
            validate_collection_name(collection, state.settings.limits.max_collection_name)
            job = _start(state, collection, path, include, exclude, dry_run, watch)
        except DiverError as exc:
            raise to_mcp_error(exc) from exc
        await _follow(ctx, job, None if wait else time.monotonic() + FOREGROUND_S)
        return _path_output(job)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def index_status(job: Job, ctx: Context) -> JobOutput:
        """Progress of a background indexing job: documents read and indexed, chunks, rate, ETA, errors."""
        try:
            return JobOutput.model_validate(state_of(ctx).jobs.get(job).snapshot())
        except DiverError as exc:
            raise to_mcp_error(exc) from exc

    @server.tool(annotations=WRITES)
    async def cancel_index(job: Job, ctx: Context) -> JobOutput:
        """Stop a background indexing job after the batch it is writing. What was committed stays searchable
        (re-running index_path later skips it); nothing is half-written. Returns the final counts."""
        state = state_of(ctx)
        try:
            state.jobs.cancel(job)
        except DiverError as exc:
            raise to_mcp_error(exc) from exc
        done = await in_thread(state.jobs.wait, job, 60.0)
        return JobOutput.model_validate(done.snapshot())

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
    )
    async def delete_documents(
        collection: Collection,
        ids: Annotated[
            list[str], Field(min_length=1, max_length=1000, description="Ids of the documents to delete.")
        ],
        ctx: Context,
    ) -> DeleteOutput:
        """Delete documents by id. Unknown ids are ignored (`deleted` counts those removed)."""
        deleted = await in_thread(lambda: state_of(ctx).engine.collection(collection).delete(ids))
        return DeleteOutput(collection=collection, requested=len(ids), deleted=deleted)
