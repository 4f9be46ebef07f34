"""``wmhkit bronze MANIFEST --out DIR``: classical WMH masks (and external tools' masks) per scan."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.bronze.methods import DEFAULT_METHODS, METHODS
from wmhkit.bronze.stage import REGISTER_CHOICES, BronzeOptions, bronze_manifest
from wmhkit.cli import app, exit_on_failures
from wmhkit.cli._compute import (
    brain_extractor_option, compute_arguments, memory_limit_option, scheduler_option, threads_per_worker_option,
    workers_option,
)


@app.command("bronze")
def bronze(
    manifest: Path = typer.Argument(..., help="Prepared manifest (wmhkit prepare), or a raw one (prepared into DIR/prepared)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (any folder; the manifest written there points back to the inputs)."),
    methods: str = typer.Option(
        "", "--methods", help=f"Comma-separated methods among {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)})."
    ),
    lst_threshold: float = typer.Option(0.5, "--lst-threshold", help="Threshold on LST ples_* maps (external_lst)."),
    bianca_threshold: float = typer.Option(0.9, "--bianca-threshold", help="Threshold on BIANCA maps (external_bianca)."),
    register_t1: str = typer.Option("auto", "--register-t1", help=f"Register the T1 to the FLAIR: {'|'.join(REGISTER_CHOICES)}."),
    seed: int = typer.Option(0, "--seed", help="Seed of the tissue model's fitting subsample."),
    brain_extractor: str = brain_extractor_option("hdbet"),
    workers: int = workers_option(),
    scheduler: str | None = scheduler_option(),
    memory_limit: str = memory_limit_option(),
    threads_per_worker: int | None = threads_per_worker_option(),
) -> None:
    """Segment WMH in every scan of MANIFEST with classical methods; write bronze_<method> masks in native space."""
    try:
        options = BronzeOptions(
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()) or None,
            thresholds={"lst": lst_threshold, "bianca": bianca_threshold},
            register_t1=register_t1, seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    compute = compute_arguments(workers, scheduler, memory_limit, threads_per_worker)
    result = bronze_manifest(manifest, out, options=options, brain_extractor=brain_extractor, **compute)
    made = sum(len(scan.outputs) for scan in result.scans.values())
    typer.echo(f"{made} bronze mask(s) for {len(result.scans)} scan(s); manifest: {result.manifest}")
    exit_on_failures(result.failures, out / "failures.tsv")
