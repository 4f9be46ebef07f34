"""``wmhkit silver MANIFEST --out DIR``: per-scan consensus (STAPLE or majority) of the bronze masks."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app, exit_on_failures
from wmhkit.cli._compute import (
    compute_arguments, memory_limit_option, scheduler_option, threads_per_worker_option, workers_option,
)
from wmhkit.fusion.stage import FUSION_METHODS, SilverOptions, silver_manifest


@app.command("silver")
def silver(
    manifest: Path = typer.Argument(..., help="Manifest with bronze_<method> columns (wmhkit bronze)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (any folder; the manifest written there points back to the inputs)."),
    method: str = typer.Option("staple", "--method", help=f"Consensus rule: {'|'.join(FUSION_METHODS)}."),
    threshold: float = typer.Option(0.5, "--threshold", help="Silver mask = consensus probability > threshold."),
    methods: str = typer.Option("", "--methods", help="Comma-separated bronze methods to fuse (default: all present)."),
    workers: int = workers_option(),
    scheduler: str | None = scheduler_option(),
    memory_limit: str = memory_limit_option(),
    threads_per_worker: int | None = threads_per_worker_option(),
) -> None:
    """Fuse the bronze masks of every scan of MANIFEST into a silver mask and probability map."""
    try:
        options = SilverOptions(
            method=method, threshold=threshold,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()) or None,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    compute = compute_arguments(workers, scheduler, memory_limit, threads_per_worker)
    result = silver_manifest(manifest, out, options=options, **compute)
    typer.echo(f"silver masks for {len(result.scans)} scan(s); manifest: {result.manifest}")
    if not result.raters.empty:
        summary = result.raters.groupby("method")[["sensitivity", "specificity"]].mean()
        for name, values in summary.iterrows():
            typer.echo(f"  {name}: sensitivity {values['sensitivity']:.3f}, specificity {values['specificity']:.4f}")
    exit_on_failures(result.failures, out / "failures.tsv")
