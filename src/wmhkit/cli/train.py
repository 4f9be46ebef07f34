"""``wmhkit train CONFIG --out RUN [--resume]``: the staged 2.5D segmentation trainer.

Run on several GPUs with ``torchrun --nproc-per-node N -m wmhkit train CONFIG --out RUN``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from wmhkit.cli import app


@app.command("train")
def train(
    config: str = typer.Argument(..., help="Config YAML file, or a shipped config name (m3sl, m3sl-cpu, baseline, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoints, logs, model/)."),
    manifest: Path = typer.Option(None, "--manifest", "-m", help="Prepared manifest.tsv (overrides the config's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoints."),
    imagenet_weights: Path = typer.Option(
        None, "--imagenet-weights", help="torchvision vgg16-397923af.pth, for configs with init: imagenet."
    ),
    parallel_planes: int = typer.Option(0, "--parallel-planes", min=0, help="Planes trained at once (0: config)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train every stage of CONFIG on a prepared manifest; write RUN/model for `wmhkit predict`."""
    from wmhkit.train.config import load_config, resolve_config_path
    from wmhkit.train.segmentation import train_run

    settings = load_config(resolve_config_path(config))
    overrides = {}
    if imagenet_weights is not None:
        overrides["imagenet_weights"] = str(imagenet_weights)
    if parallel_planes:
        overrides["parallel_planes"] = parallel_planes
    settings = dataclasses.replace(settings, **overrides)
    if progress:
        with _ProgressBars() as bars:
            result = train_run(settings, out, manifest=manifest, resume=resume, progress=bars.update)
    else:
        result = train_run(settings, out, manifest=manifest, resume=resume)
    typer.echo(f"model: {result.model_dir}")
    if result.cv_metrics is not None:
        typer.echo(f"cross-validation metrics: {result.cv_metrics}")


class _ProgressBars:
    """One rich progress bar per training epoch (on stderr)."""

    def __enter__(self) -> _ProgressBars:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._progress.__enter__()
        self._tasks: dict[str, int] = {}
        return self

    def update(self, description: str, done: int, total: int) -> None:
        if description not in self._tasks:
            for task in self._tasks.values():
                self._progress.remove_task(task)
            self._tasks = {description: self._progress.add_task(description, total=total)}
        self._progress.update(self._tasks[description], completed=done)

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)
