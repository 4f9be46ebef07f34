"""Training checkpoints: everything needed to resume exactly, written and read safely.

A checkpoint is a ``torch.save`` dict of plain types and tensors only: model,
optimizer and scheduler state dicts, the epoch just finished, the best validation
metric so far, the global RNG states, and two identities — the architecture (the
model's parameter names and shapes) and the config hash — so that a checkpoint
from another network or another config is refused instead of half-loaded.

Safety rules:

* written through :func:`wmhkit.io.atomic.atomic_path` (temp file + rename), and the
  previous ``last.pt`` is kept as ``last.prev.pt`` before it is replaced, so a kill
  at any moment leaves a complete checkpoint to resume from;
* byte-deterministic: the same state gives the same file bytes (the archive is
  written through a file object, so no temporary name is recorded in it);
* read with ``torch.load(..., weights_only=True)``: a file carrying a pickle payload
  is rejected, never executed;
* :func:`load_resume_checkpoint` falls back from a corrupt ``last.pt`` to
  ``last.prev.pt`` with a warning naming both files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from wmhkit.errors import InputError
from wmhkit.io.atomic import atomic_path
from wmhkit.train.reproducibility import restore_rng_states, rng_states

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LAST_NAME = "last.pt"
PREVIOUS_NAME = "last.prev.pt"
BEST_NAME = "best.pt"


class CheckpointError(InputError):
    """A checkpoint is unreadable, unsafe, or belongs to another model or config."""


def architecture_signature(model: torch.nn.Module) -> str:
    """SHA-256 over the model's parameter and buffer names, shapes and dtypes.

    Two models with the same signature can exchange ``state_dict`` s exactly.
    """
    entries = [f"{name}:{tuple(t.shape)}:{t.dtype}" for name, t in model.state_dict().items()]
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-serialisable config (keys sorted), identifying a run's settings."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any | None = None,
    epoch: int,
    best_metric: float | None,
    config_digest: str,
    extra: Mapping[str, Any] | None = None,
    keep_previous: bool = True,
) -> Path:
    """Write a full training checkpoint atomically.

    Parameters
    ----------
    path
        Destination (``.../last.pt`` or ``.../best.pt``).
    epoch
        Number of epochs completed (training resumes at this epoch index).
    best_metric
        Best validation metric so far (e.g. IoU), or None before the first validation.
    config_digest
        :func:`config_hash` of the run's config.
    extra
        Plain-typed additions (history rows, stage name, ...).
    keep_previous
        Rename an existing file at ``path`` to ``last.prev.pt`` first (for ``last.pt``).
    """
    path = Path(path)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture_signature(model),
        "config_hash": config_digest,
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": rng_states(),
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        # Through a file object: given a path, torch.save names the archive's records after the
        # (random) temporary file name, and identical checkpoints would differ in their bytes.
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
        if keep_previous and path.exists():
            os.replace(path, path.with_name(PREVIOUS_NAME))
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module | None = None,
    config_digest: str | None = None,
) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check its identity.

    Parameters
    ----------
    model
        When given, the checkpoint's architecture must match it.
    config_digest
        When given, the checkpoint's config hash must match it.

    Raises
    ------
    CheckpointError
        For a missing, truncated or unsafe file (pickled code is never run), a
        different architecture, or a different config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint does not exist", "check the run folder or start without --resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise CheckpointError(
            path, f"checkpoint cannot be loaded safely ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            "it is corrupt or holds arbitrary Python objects; use a checkpoint written by wmhkit",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(path, "not a wmhkit checkpoint (unknown format)", "use a checkpoint written by wmhkit")
    if model is not None and payload["architecture"] != architecture_signature(model):
        raise CheckpointError(
            path, "checkpoint was written for a different network architecture",
            "use the config the checkpoint was trained with, or start a new run folder",
        )
    if config_digest is not None and payload["config_hash"] != config_digest:
        raise CheckpointError(
            path, "checkpoint belongs to a run with a different config",
            "resume with the original config, or start a new run folder",
        )
    return payload


def load_resume_checkpoint(
    stage_dir: str | os.PathLike[str], *, model: torch.nn.Module, config_digest: str
) -> dict[str, Any] | None:
    """The newest loadable of ``last.pt`` / ``last.prev.pt`` in ``stage_dir``, or None when neither exists.

    A corrupt ``last.pt`` (e.g. a disk error) falls back to ``last.prev.pt`` with a
    warning; identity mismatches (architecture/config) are raised, not skipped.
    """
    stage_dir = Path(stage_dir)
    last, previous = stage_dir / LAST_NAME, stage_dir / PREVIOUS_NAME
    if not last.exists() and not previous.exists():
        return None
    if last.exists():
        try:
            return load_checkpoint(last, model=model, config_digest=config_digest)
        except CheckpointError as exc:
            if not previous.exists() or "different" in exc.reason:
                raise
            log.warning("%s; falling back to the previous checkpoint %s", exc, previous)
    return load_checkpoint(previous, model=model, config_digest=config_digest)


def restore_training_state(
    payload: Mapping[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> None:
    """Load model, optimizer, scheduler and RNG states from a checkpoint payload."""
    model.load_state_dict(payload["model"])
    if optimizer is not None and payload["optimizer"] is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    restore_rng_states(payload["rng"])
