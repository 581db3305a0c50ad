"""The ``diver eval`` command. ``diver/cli.py`` calls :func:`register`; tests can call it on their own app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from diver.config import DiverSettings, load_settings
from diver.errors import DiverError, InputError, require_extra

from .config import all_stages
from .runner import BENCHMARKS, EvalConfig, run_eval


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _settings_from(ctx: typer.Context) -> DiverSettings:
    """Settings the main CLI put in the context (``ctx.obj`` or ``ctx.obj.settings``), else a fresh load."""
    obj: Any = ctx.obj
    if isinstance(obj, DiverSettings):
        return obj
    nested = obj.get("settings") if isinstance(obj, dict) else getattr(obj, "settings", None)
    return nested if isinstance(nested, DiverSettings) else load_settings()


def with_profile(settings: DiverSettings, profile: str | None) -> DiverSettings:
    """``settings`` rebuilt under ``profile`` (what was set explicitly stays); unchanged when None."""
    if profile is None or profile == settings.profile:
        return settings
    if profile not in ("default", "reference"):
        raise InputError(f"unknown profile {profile!r}: use 'reference' or 'default'")
    data = settings.model_dump(exclude_unset=True)
    data["profile"] = profile
    return load_settings(**data)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""

    @app.command("eval")
    def eval_command(
        ctx: typer.Context,
        benchmark: str = typer.Option(..., "--benchmark", "-b", help=f"One of: {', '.join(BENCHMARKS)}."),
        domains: list[str] = typer.Option(  # noqa: B006 - typer reads the default
            None, "--domains", "-d", help="BRIGHT domains (repeat or comma-separate; default: all 12)."
        ),
        stages: str = typer.Option(
            "bm25,dense,hybrid", "--stages", "-s", help=f"Comma-separated: {', '.join(all_stages())} (a reranker's name: that reranker alone)."
        ),
        queries: str | None = typer.Option(
            None,
            "--queries",
            help="Precomputed query rewrites: a jsonl FILE ({id, query[, domain]}) or "
            "bright:<config> (e.g. bright:gpt4_reason).",
        ),
        long: bool = typer.Option(False, "--long", help="BRIGHT long documents, qrels from gold_ids_long."),
        bright_source: str = typer.Option(
            "hf", "--bright-source",
            help="hf | local:PATH | vendored (queries only) | FOLDER: a copy in the hub's layout with its README.md, "
            "read by datasets.load_dataset (python -m diver.datasets.bright_layout FOLDER builds one offline)."
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Run directory (default runs/<benchmark>-<hash>)."
        ),
        limit_queries: int | None = typer.Option(
            None, "--limit-queries", help="Only the first N queries per domain."
        ),
        top_k: int = typer.Option(1000, "--top-k", help="Documents kept per query (BRIGHT: 1000)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bars."),
        profile: str | None = typer.Option(
            None, "--profile",
            help="'reference' = every knob at the DIVER reference code's value (docs/PIPELINE.md), 'default' = "
            "ours; knobs set explicitly still win. Default: the profile setting (DIVER_PROFILE).",
        ),  # fmt: skip
    ) -> None:
        """Evaluate retrieval stages on BRIGHT or an offline TheoremQA benchmark; writes a run directory."""
        try:
            require_extra("eval", "diver eval")
        except DiverError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        config = EvalConfig(
            benchmark=benchmark,
            stages=_split([stages]) or [],
            domains=_split(domains),
            queries=queries,
            long=long,
            bright_source=bright_source,
            out_dir=out,
            limit_queries=limit_queries,
            top_k=top_k,
            progress=not no_progress,
        )
        try:
            result = run_eval(config, with_profile(_settings_from(ctx), profile))
        except KeyboardInterrupt:
            where = out or "the same run directory"
            typer.echo(
                f"interrupted: finished stages are saved in {where}; rerun the same command to resume",
                err=True,
            )
            raise typer.Exit(130) from None
        except DiverError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2 if isinstance(exc, InputError) else 1) from exc
        print(result.table)
        print(f"\nrun directory: {result.out_dir} (report.md, metrics.json, manifest.json, ndcg10.png)")
        sys.stdout.flush()
