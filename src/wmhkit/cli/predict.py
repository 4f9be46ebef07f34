"""``wmhkit predict [--model DIR] INPUT... --out DIR``: native-space WMH masks and volumes from a model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app, exit_on_failures
from wmhkit.cli._compute import (
    brain_extractor_option, compute_arguments, memory_limit_option, scheduler_option, threads_per_worker_option,
    workers_option,
)
from wmhkit.nn.plane_fusion import FUSION_RULES
from wmhkit.infer.volumes import DEFAULT_PV_DISTANCE_MM


@app.command("predict")
def predict(
    inputs: list[Path] = typer.Argument(..., help="FLAIR NIfTI files, or one manifest.tsv."),
    model: Path = typer.Option(
        None, "--model", "-m",
        help="Model folder (model.yaml, weights/, provenance.json); without it, the bundled starter model "
             "(see its MODEL_CARD.md).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (not a folder holding the inputs)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Threshold of the fused probability (default: the model's)."
    ),
    fusion: str | None = typer.Option(
        None, "--fusion", help=f"Fusion of the plane probabilities: {', '.join(FUSION_RULES)} (default: the model's)."
    ),
    pv_distance_mm: float = typer.Option(
        DEFAULT_PV_DISTANCE_MM, "--pv-distance-mm", min=0.0, help="Periventricular band width around the ventricles (mm)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Slices per forward pass [default: 8]."),
    precision: str = typer.Option(
        "float32", "--precision", help="Network arithmetic: float32, or bfloat16 (faster on CPUs that have it)."
    ),
    brain_extractor: str | None = brain_extractor_option(None),
    workers: int = workers_option(),
    scheduler: str | None = scheduler_option(),
    memory_limit: str = memory_limit_option(),
    threads_per_worker: int | None = threads_per_worker_option(),
) -> None:
    """Segment WMH in each scan and write masks, probability maps (or a grade and attention map), sidecars
    and volumes.csv to OUT."""
    from wmhkit.infer.predict import PredictSettings, predict_scans
    from wmhkit.nn.planes import DEFAULT_BATCH_SIZE

    if fusion is not None and fusion not in FUSION_RULES:
        raise typer.BadParameter(f"--fusion {fusion!r} is not one of {', '.join(FUSION_RULES)}")
    if model is None:
        from wmhkit.infer.starter import starter_model_dir

        model = starter_model_dir()
    settings = PredictSettings(threshold=threshold, fusion=fusion, pv_distance_mm=pv_distance_mm, precision=precision,
                               brain_extractor=brain_extractor)
    compute = compute_arguments(workers, scheduler, memory_limit, threads_per_worker)
    result = predict_scans(
        model, inputs, out, device=device, batch_size=batch_size or DEFAULT_BATCH_SIZE, settings=settings, **compute
    )
    typer.echo(f"segmented {len(result.outputs)} scan(s); volumes: {result.volumes}")
    exit_on_failures(result.failures, out / "failures.tsv")
