"""``wmhkit demo``: the whole pipeline so far on a synthesized phantom cohort."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from wmhkit.cli import app


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Output folder."),
    subjects: int = typer.Option(10, "--subjects", min=1, help="Phantom subjects (scanner profiles A–E in turn)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the phantom cohort."),
    quick: bool = typer.Option(False, "--quick", help="2 mm phantoms: about a minute."),
) -> None:
    """Synthesize a phantom cohort, prepare it, print a summary and write QC overlays."""
    from wmhkit.demo import run_demo

    result = run_demo(out, subjects=subjects, seed=seed, quick=quick)
    # At least 130 columns, so the table is never squeezed into ellipses in logs and pipes.
    console = Console(width=max(Console().width, 130))
    table = Table(title="wmhkit demo: phantom cohort after prepare")
    for column in result.summary.columns:
        table.add_column(column, justify="left" if column in {"subject", "scanner", "stage"} else "right")
    for record in result.summary.itertuples(index=False):
        table.add_row(*[f"{value:.3f}" if isinstance(value, float) else str(value) for value in record])
    console.print(table)
    timing = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.seconds.items())
    console.print(f"Stages: {timing}")
    console.print(f"Summary: {result.summary_path}\nQC overlays: {out / 'qc'} ({len(result.qc_pngs)} PNG)")
    if result.failures:
        for failure in result.failures:
            console.print(f"[red]failed[/red] {failure.subject}: {failure.error}")
        raise typer.Exit(code=1)
