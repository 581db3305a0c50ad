"""The ``diver`` command line: index, search, collections, drop, demo; eval and serve plug in from adapters."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from diver.config import DiverSettings, load_settings
from diver.errors import OPTIONAL_MODULES, DiverError, InputError, MissingDependency, missing_dependency
from diver.hits import SearchHit
from diver.service.cli_common import JsonOpt, fail, open_configured_engine

app = typer.Typer(
    name="diver",
    help="DIVER: reasoning-intensive hybrid retrieval.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> DiverSettings:
    return load_settings()


def _open_engine() -> Any:
    """The configured engine (shared process, remote or in-process), as every command but ``index`` opens it."""
    return open_configured_engine(_settings())


Globs = Annotated[list[str] | None, typer.Option(help="Gitignore-style glob (repeatable).")]


@app.command()
def index(
    collection: Annotated[str, typer.Argument(help="Collection name (created if missing).")],
    path: Annotated[
        Path,
        typer.Argument(
            help="A folder (synced) or file (text, Markdown, reST, HTML, code, PDF; notebooks/Office with the "
            "'formats' extra), or a .jsonl file (fields: id, text, optional metadata)."
        ),
    ],
    include: Globs = None,
    exclude: Globs = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would change.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Index documents. A folder is synced: changed files re-indexed, unchanged skipped, deleted files
    removed, renamed files moved (.gitignore, hidden folders, node_modules skipped). Resumable."""
    from diver.service import open_engine
    from diver.service.sync_cli import read, summary, sync_folder
    from diver.text.ingest import FolderRead

    try:
        settings = _settings()
        source = read(settings, path, include, exclude)
        if dry_run and not isinstance(source, FolderRead):
            raise InputError("--dry-run applies to a folder")
        with open_engine(settings) as engine:
            if isinstance(source, FolderRead):
                result = sync_folder(engine, collection, source, dry_run, settings.store.write_batch_size)
            else:
                documents, skipped = source
                report = engine.collection(collection, create=True).upsert(
                    documents, progress=True, total=len(documents)
                )
                result = {**report.model_dump(), "moved": 0, "removed": 0, "skipped": report.skipped + skipped}
    except DiverError as exc:
        fail(exc)
    if json_out:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for change in result.get("changes") or []:
        typer.echo(f"  {change}")
    typer.echo(("dry run, nothing written. " if dry_run else "") + summary(result))
    for dup in result["duplicate_ids"]:
        typer.echo(f"  duplicate id (last one kept): {dup}", err=True)
    for reason in result["skipped"]:
        typer.echo(f"  skipped: {reason}", err=True)
    for note in result.get("notes") or []:
        typer.echo(f"note: {note}", err=True)


@app.command()
def watch(
    collection: Annotated[str, typer.Argument(help="Collection name (created if missing).")],
    folder: Annotated[Path, typer.Argument(help="The folder to keep the collection in sync with.")],
    include: Globs = None,
    exclude: Globs = None,
    debounce_ms: Annotated[
        int | None, typer.Option("--debounce-ms", help="Sync once changes pause this long (default: config).")
    ] = None,
) -> None:
    """Sync a folder now, then again whenever its files change (debounced), until Ctrl-C."""
    from diver.service import open_engine
    from diver.service.sync_cli import watch as watch_folder

    try:
        settings = _settings()
        with open_engine(settings) as engine:
            watch_folder(engine, settings, collection, folder, include, exclude,
                         debounce_ms or settings.server.watch_debounce_ms, typer.echo)  # fmt: skip
    except DiverError as exc:
        fail(exc)
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def search(
    collection: Annotated[str, typer.Argument(help="Collection name.")],
    query: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of documents.")] = 10,
    mode: Annotated[str, typer.Option("--mode", help="bm25, dense or hybrid.")] = "hybrid",
    json_out: JsonOpt = False,
) -> None:
    """Retrieve documents (no LLM)."""
    try:
        with _open_engine() as engine:
            result = engine.collection(collection).search(query, k=k, mode=mode)
    except DiverError as exc:
        fail(exc)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    if json_out:
        typer.echo(result.model_dump_json(indent=2))
        return
    _table(
        f"{mode} search in {collection}",
        ["#", "id", "score", "title"],
        [[str(h.rank), _cited(h), f"{h.score:.4f}", h.title[:70]] for h in result.hits],
    )


def _cited(hit: SearchHit) -> str:
    """``guide.md:40-45``, ``report.pdf p.2``: the id with the lines or page its best chunk comes from."""
    if hit.lines is not None:
        first, last = hit.lines
        return f"{hit.id}:{first}" + (f"-{last}" if last != first else "")
    return f"{hit.id} p.{hit.page}" if hit.page is not None else hit.id


@app.command("deep-search")
def deep_search(
    collection: Annotated[str, typer.Argument(help="Collection name.")],
    query: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int, typer.Option("-k", "--k", help="Number of documents.")] = 10,
    rounds: Annotated[
        int | None, typer.Option("--rounds", help="Expansion rounds (default: config).")
    ] = None,
    rerank: Annotated[bool, typer.Option("--rerank/--no-rerank", help="LLM reranking.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """The full DIVER pipeline: LLM query expansion, hybrid retrieval, LLM reranking."""
    from diver.errors import require_extra

    try:
        require_extra("llm", "diver deep-search")
    except DiverError as exc:
        fail(exc)
    from diver.graph.run import run_deep_search

    context: dict[str, Any] = {"k": k}  # keys of diver.graph.context.Context (unknown keys are refused)
    if not rerank:
        context.update(pointwise=False, listwise=False)
    if rounds is not None:
        context["rounds"] = rounds
    try:
        with _open_engine() as engine:
            result = run_deep_search(
                collection,
                query,
                engine.settings,
                engine=engine,
                context=context,
                progress=lambda event: typer.echo(
                    f"  {event.get('event')}: {event.get('message', '')}", err=True
                ),
            )
    except DiverError as exc:
        fail(exc)
    if json_out:
        typer.echo(result.model_dump_json(indent=2))
        return
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"stop: {result.stop_reason}; LLM calls {result.llm_calls}, tokens {result.tokens}", err=True)
    _table(
        f"deep search in {collection}",
        ["#", "id", "score", "title"],
        [[str(h.rank), _cited(h), f"{h.score:.4f}", h.title[:70]] for h in result.hits],
    )


@app.command()
def collections(json_out: JsonOpt = False) -> None:
    """List collections with document/chunk counts and their embedder."""
    try:
        with _open_engine() as engine:
            infos = engine.list_collections()
    except DiverError as exc:
        fail(exc)
    if json_out:
        typer.echo(json.dumps([i.model_dump() for i in infos], indent=2))
        return
    _table(
        "collections",
        ["name", "documents", "chunks", "embedder", "backend", "dims", "chunk tokens"],
        [
            [
                i.name,
                str(i.documents),
                str(i.chunks),
                i.embedder,
                i.embedding_backend,
                str(i.dimensions),
                str(i.chunk_tokens),
            ]
            for i in infos
        ],
    )


@app.command()
def get(
    collection: Annotated[str, typer.Argument()], doc_id: Annotated[str, typer.Argument(help="Document id.")]
) -> None:
    """Print one document as JSON."""
    try:
        with _open_engine() as engine:
            typer.echo(engine.collection(collection).get(doc_id).model_dump_json(indent=2))
    except DiverError as exc:
        fail(exc)


@app.command()
def delete(collection: Annotated[str, typer.Argument()], ids: Annotated[list[str], typer.Argument()]) -> None:
    """Delete documents by id."""
    try:
        with _open_engine() as engine:
            deleted = engine.collection(collection).delete(ids)
    except DiverError as exc:
        fail(exc)
    typer.echo(f"deleted {deleted} of {len(ids)}")


@app.command()
def drop(
    collection: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a whole collection (BM25, vectors and documents)."""
    if not yes and sys.stdin.isatty() and not typer.confirm(f"drop collection {collection!r}?"):
        raise typer.Exit(1)
    try:
        with _open_engine() as engine:
            engine.drop(collection)
    except DiverError as exc:
        fail(exc)
    typer.echo(f"dropped {collection}")


@app.command()
def config() -> None:
    """Show the effective configuration (secrets redacted)."""
    try:
        settings = _settings()
    except DiverError as exc:
        fail(exc)
    typer.echo(settings.model_dump_json(indent=2))


@app.command()
def demo(
    collection: Annotated[str, typer.Option(help="Collection to build.")] = "theoremqa-theorems",
    queries: Annotated[int, typer.Option(help="How many BRIGHT theoremqa_theorems queries to run.")] = 3,
    deep: Annotated[
        bool, typer.Option("--deep/--no-deep", help="Then one deep search with an LLM, trace printed.")
    ] = True,
) -> None:
    """Index the TheoremQA theorems (354), compare bm25/dense/hybrid on BRIGHT queries, then one deep search."""
    from diver.demo import run_demo

    try:
        run_demo(_settings(), collection, queries, echo=typer.echo, deep=deep)
    except DiverError as exc:
        fail(exc)


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def _register_adapters() -> None:
    """eval and serve live in adapters with their own extras; register them when importable."""
    for module in ("diver.evals.cli", "diver.server.cli", "diver.service.cli", "diver.train.cli"):
        try:
            register = __import__(module, fromlist=["register"]).register
        except ImportError as exc:
            logging.getLogger(__name__).debug("%s not available: %s", module, exc)
            continue
        register(app)


def main() -> None:
    # Model-loading progress bars of transformers/huggingface_hub are noise on a terminal; ours stay.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=os.environ.get("DIVER_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    _register_adapters()
    try:
        app()
    except (InputError, MissingDependency) as exc:  # raised outside a command's own handler (e.g. settings)
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except ImportError as exc:  # an optional module imported without ``require``: still one line, no traceback
        if (exc.name or "").split(".")[0] not in OPTIONAL_MODULES:
            raise
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
        typer.secho(f"error: {missing_dependency(exc, purpose=f'diver {command}'.strip())}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
