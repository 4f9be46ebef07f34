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
        with ProgressBars() as bars:
            result = train_run(settings, out, manifest=manifest, resume=resume, progress=bars.update)
    else:
        result = train_run(settings, out, manifest=manifest, resume=resume)
    typer.echo(f"model: {result.model_dir}")
    if result.cv_metrics is not None:
        typer.echo(f"cross-validation metrics: {result.cv_metrics}")


class ProgressBars:
    """Rich progress bars on stderr: one for the batches of the current training epoch and, with ``steps``
    (the demo's), one for the progress lines whose description starts with ``steps``."""

    def __init__(self, steps: str | None = None) -> None:
        self.steps_prefix = steps

    def __enter__(self) -> ProgressBars:
        from rich.console import Console
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
        )

        time_column = TimeRemainingColumn() if self.steps_prefix is None else TimeElapsedColumn()
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  time_column, console=Console(stderr=True), transient=True)
        self._progress.__enter__()
        self._steps: int | None = None
        self._detail: tuple[str, int] | None = None
        return self

    def update(self, description: str, done: int, total: int) -> None:
        if self.steps_prefix is not None and description.startswith(self.steps_prefix):
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
