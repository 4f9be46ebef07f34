"""``wmhkit train-volume`` (GP-Unet on volumes or grades) and ``wmhkit evaluate-volume`` (its agreement tables)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import typer

from wmhkit.cli import app

log = logging.getLogger(__name__)


@app.command("train-volume")
def train_volume_command(
    config: str = typer.Argument(..., help="Config YAML, or a shipped name (volume-cpu, fazekas-cpu, strong-cpu, volume, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (splits, checkpoints, seed-<s>/model, evaluation/)."),
    manifest: Path = typer.Option(None, "--manifest", "-m", help="Prepared manifest.tsv (overrides the config's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoints."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Score every seed's model on the test split."),
) -> None:
    """Train a GP-Unet on the manifest's volume_ml or fazekas (or its strong twin on gold masks)."""
    from wmhkit.train.config import resolve_config_path
    from wmhkit.train.volume import train_volume
    from wmhkit.train.volume_config import load_volume_config

    settings = load_volume_config(resolve_config_path(config))
    result = train_volume(settings, out, manifest=manifest, resume=resume)
    for seed in result.seeds:
        typer.echo(f"seed {seed.seed}: {seed.epochs} epochs, best validation loss {seed.best_val_loss:.6g}, "
                   f"model {seed.model_dir}")
    test_ids = [scan for scan, role in result.splits.items() if role == "test"]
    if evaluate and test_ids:
        models = {f"{settings.name}/seed-{seed.seed}": seed.model_dir for seed in result.seeds}
        written = write_evaluation(models, result.manifest, out / "evaluation", {"test": test_ids})
        typer.echo(f"evaluation: {', '.join(str(p) for p in written)}")


@app.command("evaluate-volume")
def evaluate_volume_command(
    models: list[Path] = typer.Argument(..., help="Model folders written by wmhkit train-volume."),
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Prepared manifest with volume_ml (or fazekas)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for predictions.csv, agreement.* and confounders.*."),
    set_name: str = typer.Option("all", "--set", help="Name of this scan set in the tables."),
) -> None:
    """ICC(2,1) with 95 % CI, Pearson r, Bland-Altman, Dice and the confounder OLS of volume models."""
    from wmhkit.io.manifest import read_manifest

    table = read_manifest(manifest)
    scan_ids = [table.scan_id(row) for row in table.rows()]
    named = {str(model): model for model in models}
    written = write_evaluation(named, manifest, out, {set_name: scan_ids})
    typer.echo(f"wrote {', '.join(str(p) for p in written)}")


def write_evaluation(models: dict[str, Path], manifest: Path, out: Path,
                     scan_sets: dict[str, list[str]]) -> list[Path]:
    """Predict every (model, scan set), then write the per-scan CSV and the agreement/confounder tables."""
    from wmhkit.infer.volume import load_volume_model, predict_scans
    from wmhkit.stats.tables import write_csv, write_tables
    from wmhkit.stats.volume_models import agreement_table, confounder_table

    frames = []
    columns: tuple[str, str] = ("volume_ml", "predicted_volume_ml")
    for name, folder in models.items():
        model = load_volume_model(folder)
        if model.labels == "fazekas":
            columns = ("fazekas", "predicted_grade")
        for set_name, scan_ids in scan_sets.items():
            frame = predict_scans(model, manifest, scan_ids=scan_ids)
            frame.insert(0, "set", set_name)
            frame.insert(0, "model", name)
            frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    written = [write_csv(predictions, out / "predictions.csv")]
    reference, predicted = columns
    for name, build in (("agreement", agreement_table), ("confounders", confounder_table)):
        try:
            table = build(predictions, reference=reference, predicted=predicted)
        except ValueError as exc:  # too few scans in a set for ICC (3) or the OLS (5)
            log.warning("%s table not written: %s", name, exc)
            continue
        written.extend(write_tables(table, out, name))
    return written
