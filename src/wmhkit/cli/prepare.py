"""``wmhkit prepare MANIFEST --out DIR``: the preprocessing stage over a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app, exit_on_failures
from wmhkit.cli._compute import (
    brain_extractor_option, compute_arguments, memory_limit_option, scheduler_option, threads_per_worker_option,
    workers_option,
)


@app.command("prepare")
def prepare(
    manifest: Path = typer.Argument(..., help="Input manifest.tsv."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (not the manifest's folder)."),
    normalisation: str = typer.Option(
        "percentile", "--normalisation", help="Default intensity normalisation: percentile (0th-98th) or minmax."
    ),
    dataset_normalisation: list[str] = typer.Option(
        [], "--dataset-normalisation", help="Per-dataset override DATASET=percentile|minmax (repeatable)."
    ),
    n4: bool = typer.Option(True, "--n4/--no-n4", help="N4 bias-field correction."),
    n4_shrink: int = typer.Option(4, "--n4-shrink", min=1, help="N4 shrink factor (for a 1 mm grid)."),
    n4_iterations: str = typer.Option("25,25,15", "--n4-iterations", help="N4 iterations per fitting level."),
    crop_margin_mm: float = typer.Option(10.0, "--crop-margin-mm", min=0.0, help="Margin around the brain box (mm)."),
    fixed_shape: str = typer.Option(
        "", "--fixed-shape", help="Pad/crop every scan to this shape around the brain, e.g. 192x224x192."
    ),
    qc_png: bool = typer.Option(True, "--qc-png/--no-qc-png", help="Write a brain-mask overlay PNG per scan."),
    working_spacing_mm: str = typer.Option(
        "", "--working-spacing-mm",
        help="Resample to this spacing along the RAS axes, e.g. 1,1,1 (a model trained on it declares it); "
             "default: native voxels.",
    ),
    thick_slice_mm: float = typer.Option(
        3.0, "--thick-slice-mm", min=0.0, help="Axes with voxels at least this thick (mm) keep their native spacing."
    ),
    brain_extractor: str = brain_extractor_option("hdbet"),
    workers: int = workers_option(),
    scheduler: str | None = scheduler_option(),
    memory_limit: str = memory_limit_option(),
    threads_per_worker: int | None = threads_per_worker_option(),
) -> None:
    """Reorient, bias-correct, brain-mask, normalise and crop every scan of MANIFEST."""
    from wmhkit.preprocess.bias import N4Settings
    from wmhkit.preprocess.pipeline import PrepareOptions, prepare_manifest

    try:
        options = PrepareOptions(
            normalisation=normalisation,
            dataset_normalisation=_parse_dataset_normalisation(dataset_normalisation),
            n4=n4,
            n4_settings=N4Settings(
                shrink_factor=n4_shrink, iterations=_parse_ints(n4_iterations, "--n4-iterations")
            ),
            crop_margin_mm=crop_margin_mm,
            fixed_shape=_parse_shape(fixed_shape),
            qc_png=qc_png,
            brain_extractor=brain_extractor,
            working_spacing_mm=_parse_spacing(working_spacing_mm),
            thick_slice_mm=thick_slice_mm,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    compute = compute_arguments(workers, scheduler, memory_limit, threads_per_worker)
    result = prepare_manifest(manifest, out, options=options, **compute)
    typer.echo(f"prepared {len(result.scans)} scan(s); manifest: {result.manifest}")
    exit_on_failures(result.failures, out / "failures.tsv")


def _parse_dataset_normalisation(items: list[str]) -> dict[str, str]:
    parsed = {}
    for item in items:
        dataset, sep, method = item.partition("=")
        if not sep or not dataset or not method:
            raise typer.BadParameter(f"{item!r} is not DATASET=METHOD (e.g. siteB=minmax)")
        parsed[dataset] = method
    return parsed


def _parse_shape(text: str) -> tuple[int, int, int] | None:
    if not text:
        return None
    shape = _parse_ints(text.lower().replace("x", ","), "--fixed-shape")
    if len(shape) != 3:
        raise typer.BadParameter(f"--fixed-shape {text!r} must be three sizes like 192x224x192")
    return shape  # type: ignore[return-value]


def _parse_spacing(text: str) -> tuple[float, float, float] | None:
    if not text:
        return None
    try:
        spacing = tuple(float(p) for p in text.lower().replace("x", ",").split(","))
    except ValueError:
        spacing = ()
    if len(spacing) != 3 or min(spacing) <= 0:
        raise typer.BadParameter(f"--working-spacing-mm {text!r} must be three positive spacings like 1,1,1")
    return spacing  # type: ignore[return-value]


def _parse_ints(text: str, option: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise typer.BadParameter(f"{option} {text!r} must be positive whole numbers")
    return tuple(int(p) for p in parts)
