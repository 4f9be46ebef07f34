"""``wmhkit demo``: the whole of wmhkit end to end on a phantom cohort, ending with a summary table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from wmhkit.cli import app

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Output folder (a run left there is resumed)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny 2 mm cohort and one-epoch models: a few minutes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the phantoms, splits and networks."),
    real_data: Path = typer.Option(
        None, "--real-data", help="Shared real-data folder (e.g. ../shared/data/real): real unlabeled scans join the "
        "label stages; the three annotated Lesjak 2018 scans are scored."),
    imagenet_weights: Path = typer.Option(
        None, "--imagenet-weights", help="torchvision vgg16-397923af.pth: also train the transfer-learning model."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Synthesize, prepare, label (bronze, silver), train, predict, evaluate, analyse and report."""
    from rich.console import Console

    from wmhkit.cli.train import ProgressBars
    from wmhkit.demo import run_demo

    if progress:
        with ProgressBars(steps="demo ") as bars:
            result = run_demo(out, quick=quick, seed=seed, real_data=real_data, imagenet_weights=imagenet_weights,
                              progress=bars.update)
    else:
        result = run_demo(out, quick=quick, seed=seed, real_data=real_data, imagenet_weights=imagenet_weights)
    # At least 120 columns, so the table is never squeezed into ellipses in logs and pipes.
    console = Console(width=max(Console().width, 120))
    console.print(_summary_table(result.summary))
    if result.summary["data"].str.startswith("real").any():
        from wmhkit.report.attribution import ATTRIBUTIONS

        entry = ATTRIBUTIONS["lesjak2018"]
        console.print(f"Real data: {entry.citation}. Licence {entry.licence}. MS lesions on three scans: "
                      "a check on real anatomy, not a clinical validation.")
    timing = ", ".join(f"{step.name} {step.seconds:.0f} s" + (" (earlier run)" if step.skipped else "")
                       for step in result.steps)
    console.print(f"Steps: {timing}")
    console.print(f"Report: {result.report}\nMetrics: {result.metrics}")
    if len(result.failures):
        console.print(f"[red]{len(result.failures)} failure(s)[/red] (see {out / 'failures.tsv'}):")
        for failure in result.failures.itertuples():
            console.print(f"  {failure.demo_step}: {failure.subject} {failure.session} {failure.error}")
        raise typer.Exit(code=1)


def _summary_table(summary: pd.DataFrame) -> Table:
    from rich.table import Table

    table = Table(title="wmhkit demo: every model on the held-out scans (means per scan)")
    for column in summary.columns:
        table.add_column(column, justify="left" if column in {"model", "data"} else "right")
    for record in summary.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float):
                cells.append("—" if math.isnan(value) else f"{value:.3f}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    return table
