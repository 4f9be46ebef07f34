"""``wmhkit stats``: group comparisons and volume agreement of a metrics CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app
from wmhkit.errors import InputError


@app.command("stats")
def stats_command(
    metrics_csv: Path = typer.Argument(..., help="Per-scan metrics CSV (e.g. from wmhkit evaluate)."),
    by: str = typer.Option(..., "--by", help="Comma-separated grouping columns, e.g. variant,stage,scanner."),
    out: Path = typer.Option(..., "--out", help="Output folder for the CSV and Markdown tables."),
    metrics: str = typer.Option(None, "--metrics", help="Comma-separated metric columns (default: all present)."),
    volumes: str = typer.Option(
        None, "--volumes", help="Reference,predicted volume columns for ICC/Bland-Altman/OLS, e.g. vol_gold_ml,vol_pred_ml."
    ),
    covariates: str = typer.Option(None, "--covariates", help="Covariate columns of the OLS, e.g. vent_ml,wm_ml,csf_ml."),
) -> None:
    """One-way ANOVA (+ Holm-corrected pooled t-tests), ICC(2,1), Bland-Altman and confounder OLS."""
    from wmhkit.io.provenance import write_sidecar
    from wmhkit.stats.analysis import analyse_metrics, write_results
    from wmhkit.stats.tables import read_table

    if not metrics_csv.is_file():
        raise InputError(metrics_csv, "metrics CSV does not exist", "run `wmhkit evaluate` first or fix the path")
    groupings = _names(by)
    volume_pair = _names(volumes) if volumes else None
    if volume_pair is not None and len(volume_pair) != 2:
        raise InputError(None, f"--volumes needs two columns, got {volumes!r}", "pass reference,predicted")
    table = read_table(metrics_csv, text_columns=("subject", "session", *groupings))
    try:
        results = analyse_metrics(
            table, by=groupings, metrics=_names(metrics) if metrics else None,
            volumes=tuple(volume_pair) if volume_pair else None, covariates=_names(covariates) if covariates else (),
        )
    except ValueError as exc:
        raise InputError(metrics_csv, str(exc), "check the column names against the CSV header") from exc
    written = write_results(results, out)
    for path in written:
        if path.suffix == ".csv":
            write_sidecar(path, step="stats", inputs={"metrics": metrics_csv},
                          parameters={"by": groupings, "metrics": metrics, "volumes": volume_pair,
                                      "covariates": covariates})
    typer.echo(f"wrote {len(written)} table file(s) to {out}")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
