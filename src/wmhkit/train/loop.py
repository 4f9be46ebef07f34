"""The training loop of both model families: epochs, checkpoints, best-by-metric, early stop, history, resume.

A family hands :func:`train_epochs` a :class:`Task` (network, optimiser, scheduler,
training batches, loss, validation), which trains it in one folder::

    FOLDER/last.pt, last.prev.pt   after every epoch: weights, optimiser, scheduler, RNG states, epoch,
                                   best metric, history rows and epochs without improvement
    FOLDER/best.pt                 the same, whenever the selection metric improves
    FOLDER/history.csv             one row per epoch

A task draws an epoch's random numbers from generators of the epoch index
(:func:`~wmhkit.train.reproducibility.epoch_generator`) and the checkpoint holds the
global RNG states, so a run killed at any point and resumed ends with the same
weights and history bytes as an uninterrupted one (same device and library versions).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pandas as pd
import torch

from wmhkit.errors import OutputError
from wmhkit.io.atomic import write_text_atomic
from wmhkit.train import distributed
from wmhkit.train.checkpoint import (
    BEST_NAME, LAST_NAME, load_resume_checkpoint, restore_training_state, save_checkpoint,
)
from wmhkit.train.config import EarlyStopping
from wmhkit.train.distributed import DistContext

log = logging.getLogger(__name__)

#: ``progress(description, done, total)`` is called after every training batch.
Progress = Callable[[str, int, int], None]
HISTORY_CSV = "history.csv"


class Batches(NamedTuple):
    """One epoch's training batches: how many, and the ``(input, target)`` tensors, made as they are drawn."""

    count: int
    items: Iterator[tuple[torch.Tensor, torch.Tensor]]


class Task(Protocol):
    """What a model family supplies for one training unit; ``scheduler`` (or None) steps once per epoch."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any

    def train_batches(self, epoch: int) -> Batches: ...

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def validate(self) -> dict[str, float]:
        """``val_loss`` and the family's metrics for the current weights."""


@dataclass(frozen=True)
class LoopSettings:
    """``unit`` names the unit in logs and checkpoints (``gold/axial/fold0``, ``seed-0``); ``metric`` (a key of
    :meth:`Task.validate`) selects ``best.pt``, larger being better with ``maximise``; it must beat the best by
    more than ``early_stopping.min_delta``, and ``patience`` epochs without that stop training (None: never);
    ``history_extras`` are columns of ``learning_rate``, ``best``, ``seconds`` appended to each history row."""

    unit: str
    epochs: int
    metric: str
    maximise: bool
    early_stopping: EarlyStopping | None = None
    history_extras: tuple[str, ...] = ()
    tensorboard: bool = False


@dataclass(frozen=True)
class LoopResult:
    """Best selection metric (None before any epoch) and epochs run in all."""

    best_metric: float | None
    epochs: int


def train_epochs(task: Task, folder: Path, settings: LoopSettings, *, digest: str, resume: bool,
                 context: DistContext = DistContext(), progress: Progress | None = None) -> LoopResult:
    """Train ``task`` in ``folder`` up to ``settings.epochs`` (continuing its checkpoint with ``resume``).

    ``task.model`` ends with the last epoch's weights; ``digest`` is the run identity.

    Raises
    ------
    OutputError
        When ``folder`` holds a checkpoint and ``resume`` is False.
    CheckpointError
        When its checkpoint belongs to another network or run identity.
    """
    model, optimizer, scheduler = task.model, task.optimizer, task.scheduler
    early = settings.early_stopping
    min_delta = early.min_delta if early is not None else 0.0
    best, stale, history, start = None, 0, [], 0
    payload = load_resume_checkpoint(folder, model=model, config_digest=digest)
    if payload is not None:
        if not resume:
            raise OutputError(f"{folder} already holds a checkpoint; pass --resume to continue it or use a new --out")
        restore_training_state(payload, model=model, optimizer=optimizer, scheduler=scheduler)
        start, best = payload["epoch"], payload["best_metric"]
        stale, history = int(payload["extra"]["stale_epochs"]), list(payload["extra"]["history"])
        log.info("%s: resuming after epoch %d", settings.unit, start)
    network = distributed.wrap_model(model, context)
    writer = _tensorboard(folder, start) if settings.tensorboard and context.is_main else None
    for epoch in range(start, settings.epochs):
        if early is not None and stale >= early.patience:
            log.info("%s: early stop after epoch %d", settings.unit, epoch)
            break
        started = time.perf_counter()
        description = f"{settings.unit} epoch {epoch + 1}/{settings.epochs}"
        train_loss = _train_epoch(network, task, task.train_batches(epoch), context, description, progress)
        metrics = task.validate()
        learning_rate = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        value = metrics[settings.metric]
        improved = best is None or (value > best + min_delta if settings.maximise else value < best - min_delta)
        best, stale = (value, 0) if improved else (best, stale + 1)
        extras = {"learning_rate": learning_rate, "best": improved, "seconds": round(time.perf_counter() - started, 3)}
        history.append({"epoch": epoch + 1, "train_loss": train_loss, **metrics,
                        **{name: extras[name] for name in settings.history_extras}})
        log.info("%s: epoch %d/%d train loss %.4g, %s%s", settings.unit, epoch + 1, settings.epochs, train_loss,
                 ", ".join(f"{name} {value:.4g}" for name, value in metrics.items()), " (best)" if improved else "")
        if context.is_main:
            extra = {"history": history, "stale_epochs": stale, "unit": settings.unit}
            common = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "best_metric": best,
                      "config_digest": digest, "extra": extra, "epoch": epoch + 1}
            if improved:
                save_checkpoint(folder / BEST_NAME, keep_previous=False, **common)
            write_history(folder / HISTORY_CSV, history)
            save_checkpoint(folder / LAST_NAME, **common)
            if writer is not None:
                for name in ("train_loss", *metrics, *(e for e in settings.history_extras if e != "best")):
                    writer.add_scalar(f"{settings.unit}/{name}", history[-1][name], epoch + 1)
                writer.flush()
        distributed.barrier(context)
    if writer is not None:
        writer.close()
    return LoopResult(best, len(history))


def _train_epoch(network: torch.nn.Module, task: Task, batches: Batches, context: DistContext, description: str,
                 progress: Progress | None) -> float:
    """One pass over ``batches``; the mean training loss per sample over every rank."""
    network.train()
    total = torch.zeros(2, dtype=torch.float64, device=context.device)  # loss × samples, samples
    for number, (inputs, target) in enumerate(batches.items, start=1):
        task.optimizer.zero_grad(set_to_none=True)
        loss = task.loss(network(inputs), target)
        loss.backward()
        task.optimizer.step()
        total += torch.tensor([loss.item() * len(inputs), len(inputs)], dtype=torch.float64, device=context.device)
        if progress is not None and context.is_main:
            progress(description, number, batches.count)
    total = distributed.all_reduce_sum(total, context)
    return float(total[0] / total[1])


def write_history(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write the epoch rows as CSV atomically (the checkpoint keeps them too, so a resumed run rewrites the
    same file it would have written uninterrupted)."""
    buffer = io.StringIO()
    pd.DataFrame(list(rows)).to_csv(buffer, index=False, lineterminator="\n", float_format="%.8g")
    return write_text_atomic(path, buffer.getvalue())


def _tensorboard(folder: Path, start_epoch: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed; per-epoch logs go to %s only", HISTORY_CSV)
        return None
    return SummaryWriter(str(folder / "tensorboard"), purge_step=start_epoch + 1 if start_epoch else None)
