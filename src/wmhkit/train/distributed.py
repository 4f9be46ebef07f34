"""Multi-process training under ``torchrun``: DistributedDataParallel helpers.

``torchrun --nproc-per-node N -m wmhkit train CONFIG --out RUN`` sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and joins the process group (NCCL on CUDA,
gloo on CPU). Without them it returns a single-process context and nothing in
the trainer changes. Each rank trains on its share of every epoch's slices;
gradients are averaged by DDP, metrics summed with :func:`all_reduce_sum`; only
rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, and its ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and logs progress."""
        return self.rank == 0


def choose_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for but no CUDA GPU is available; use device: auto or cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1; else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    device = choose_device(device_preference, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    context = DistContext(dist.get_rank(), dist.get_world_size(), device)
    log.info("distributed: rank %d of %d on %s", context.rank, context.world_size, device)
    return context


def wrap_model(model: torch.nn.Module, context: DistContext) -> torch.nn.Module:
    """The model wrapped in DistributedDataParallel when distributed (freeze layers first)."""
    if not context.distributed:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Element-wise sum of ``values`` over ranks (unchanged when not distributed)."""
    if context.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_buffers(model: torch.nn.Module, context: DistContext) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward pass, so after the last
    training step of an epoch each rank still holds its own running statistics;
    this makes validation and checkpoints identical on all ranks.
    """
    if context.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def gather_strings(text: str, context: DistContext) -> list[str]:
    """``text`` of every rank, in rank order (``[text]`` when not distributed)."""
    if not context.distributed:
        return [text]
    gathered: list[object] = [None] * context.world_size
    dist.all_gather_object(gathered, text)
    return [str(item) for item in gathered]


def barrier(context: DistContext) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if context.distributed:
        dist.barrier()


def shard(indices: np.ndarray, context: DistContext, *, equal: bool = True) -> np.ndarray:
    """This rank's share of ordered ``indices``: every ``world_size``-th from ``rank``.

    With ``equal`` (training) the tail is dropped so all ranks take the same number
    of steps, as DDP requires; without it (validation) every index is kept once.
    """
    usable = (len(indices) // context.world_size) * context.world_size if equal else len(indices)
    return indices[context.rank:usable:context.world_size]
