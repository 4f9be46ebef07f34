"""``wmhkit evaluate``: challenge metrics of predicted masks against gold masks, one CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app


@app.command("evaluate")
def evaluate_command(
    pred: Path = typer.Option(None, "--pred", help="Predicted mask file, or folder of masks named like the gold."),
    gold: Path = typer.Option(None, "--gold", help="Gold mask file (0/1, 2 = ignored), or folder of them."),
    manifest: Path = typer.Option(None, "--manifest", help="manifest.tsv: pairs by row, adds metadata columns."),
    pred_column: str = typer.Option("pred", "--pred-column", help="Manifest column of predictions (without --pred)."),
    gold_column: str = typer.Option("gold", "--gold-column", help="Manifest column of gold masks (without --gold)."),
    resample: bool = typer.Option(
        False, "--resample", help="Resample predictions onto the gold grid (nearest neighbour) instead of failing."
    ),
    out: Path = typer.Option(Path("metrics.csv"), "--out", help="Output CSV (one row per scan)."),
) -> None:
    """Score predictions against gold masks with the MICCAI 2017 WMH challenge definitions."""
    from wmhkit.io.manifest import read_manifest
    from wmhkit.io.provenance import write_sidecar
    from wmhkit.metrics.evaluate import evaluate_cohort, match_pairs
    from wmhkit.stats.tables import write_csv

    table = read_manifest(manifest) if manifest is not None else None
    columns = (pred_column, gold_column)
    metrics = evaluate_cohort(pred, gold, manifest=table, columns=columns, resample=resample)
    write_csv(metrics, out)
    pairs = match_pairs(pred, gold, manifest=table, columns=columns)
    inputs = {f"{pair.key}/pred": pair.pred for pair in pairs} | {f"{pair.key}/gold": pair.gold for pair in pairs}
    if manifest is not None:
        inputs["manifest"] = manifest
    write_sidecar(out, step="evaluate", inputs=inputs,
                  parameters={"resample": resample, "pred_column": pred_column, "gold_column": gold_column})
    typer.echo(f"{len(metrics)} scan(s) scored; mean Dice {metrics['dice'].mean():.4f}; wrote {out}")
