"""``wmhkit train-volume`` (GP-Unet on volumes or grades) and ``wmhkit evaluate-volume`` (its agreement tables)."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app


@app.command("train-volume")
def train_volume_command(
    config: str = typer.Argument(..., help="Config YAML, or a shipped name (volume-cpu, fazekas-cpu, strong-cpu, volume, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (splits, checkpoints, seed-<s>/model, evaluation/)."),
    manifest: Path = typer.Option(None, "--manifest", "-m", help="Prepared manifest.tsv (overrides the config's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoints."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Score every seed's model on the test split."),
) -> None:
    """Train a GP-Unet on the manifest's volume_ml or fazekas (or its strong twin on gold masks)."""
    from wmhkit.infer.volume import evaluate_test_split
    from wmhkit.train.config import resolve_config_path
    from wmhkit.train.volume import train_volume
    from wmhkit.train.volume_config import load_volume_config

    result = train_volume(load_volume_config(resolve_config_path(config)), out, manifest=manifest, resume=resume)
    for seed in result.seeds:
        typer.echo(f"seed {seed.seed}: {seed.epochs} epochs, best validation loss {seed.best_val_loss:.6g}, "
                   f"model {seed.model_dir}")
    written = evaluate_test_split(result.models, result.manifest, result.splits, out / "evaluation") if evaluate else []
    if written:
        typer.echo(f"evaluation: {', '.join(str(p) for p in written)}")


@app.command("evaluate-volume")
def evaluate_volume_command(
    models: list[Path] = typer.Argument(..., help="Model folders written by wmhkit train-volume."),
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Prepared manifest with volume_ml (or fazekas)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for predictions.csv, agreement.* and confounders.*."),
    set_name: str = typer.Option("all", "--set", help="Name of this scan set in the tables."),
) -> None:
    """ICC(2,1) with 95 % CI, Pearson r, Bland-Altman, Dice and the confounder OLS of volume models."""
    from wmhkit.infer.volume import evaluate_volume_models
    from wmhkit.io.manifest import read_manifest

    table = read_manifest(manifest)
    scan_ids = [table.scan_id(row) for row in table.rows()]
    named = {str(model): model for model in models}
    written = evaluate_volume_models(named, manifest, out, {set_name: scan_ids})
    typer.echo(f"wrote {', '.join(str(p) for p in written)}")
