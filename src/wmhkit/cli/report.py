"""``wmhkit report``: one self-contained HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from wmhkit.cli import app
from wmhkit.report.context import DEFAULT_MAX_OVERLAYS
from wmhkit.report.render import REPORT_FILE, write_report


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="Run folder (metrics.csv, stats/, manifest.tsv, failures.tsv, *.json)."),
    out: Path = typer.Option(None, "--out", help=f"Report file (default RUN_DIR/{REPORT_FILE})."),
    max_overlays: int = typer.Option(
        DEFAULT_MAX_OVERLAYS, "--max-overlays", min=0, help="Most scans drawn as overlay mosaics (0: none)."
    ),
    baseline: str = typer.Option("baseline", "--baseline", help="Variant shown as the baseline in the paired plot."),
    improved: str = typer.Option("m3sl", "--improved", help="Variant compared with the baseline in the paired plot."),
) -> None:
    """Write an HTML report: provenance, per-scan table with QC flags, overlays, figures, statistics."""
    path = write_report(run_dir, out, max_overlays=max_overlays, baseline=baseline, improved=improved)
    typer.echo(f"wrote {path}")
