"""``wmhkit report``: one self-contained HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="Run folder (metrics.csv, stats/, manifest.tsv, failures.tsv, *.json)."),
    out: Path = typer.Option(None, "--out", help="Report file (default RUN_DIR/report.html)."),
    max_overlays: int = typer.Option(
        None, "--max-overlays", min=0, help="Most scans drawn as overlay mosaics (0: none; default 8)."
    ),
    baseline: str = typer.Option("baseline", "--baseline", help="Variant shown as the baseline in the paired plot."),
    improved: str = typer.Option("m3sl", "--improved", help="Variant compared with the baseline in the paired plot."),
) -> None:
    """Write an HTML report: provenance, per-scan table with QC flags, overlays, figures, statistics."""
    # Imported here so that `wmhkit --help` and the other commands don't pay for pandas/matplotlib.
    from wmhkit.report.context import DEFAULT_MAX_OVERLAYS
    from wmhkit.report.render import write_report

    overlays = DEFAULT_MAX_OVERLAYS if max_overlays is None else max_overlays
    path = write_report(run_dir, out, max_overlays=overlays, baseline=baseline, improved=improved)
    typer.echo(f"wrote {path}")
