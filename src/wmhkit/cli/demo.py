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

    from wmhkit.demo import run_demo

    if progress:
        with _DemoProgress() as bars:
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


class _DemoProgress:
    """Two rich progress bars on stderr: the demo's steps, and the batches of the current training epoch."""

    def __enter__(self) -> _DemoProgress:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._progress.__enter__()
        self._steps: int | None = None
        self._detail: tuple[str, int] | None = None
        return self

    def update(self, description: str, done: int, total: int) -> None:
        if description.startswith("demo "):
            if self._steps is None:
                self._steps = self._progress.add_task(description, total=total)
            self._progress.update(self._steps, description=description, completed=done)
            return
        if self._detail is None or self._detail[0] != description:
            if self._detail is not None:
                self._progress.remove_task(self._detail[1])
            self._detail = (description, self._progress.add_task(description, total=total))
        self._progress.update(self._detail[1], completed=done)

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)
