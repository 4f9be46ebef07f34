"""One plane of a 2.5D model: its 2D network run slice by slice over the brain box.

The prepared volume (canonical RAS+, see :mod:`wmhkit.preprocess.patches`) is cut
to the brain's bounding box (outside it, prepared images are zero, so nothing is
lost); the box is cut into slices along the plane's axis with
:func:`~wmhkit.preprocess.patches.slices_along` (the slicing training uses), each
slice zero-padded symmetrically to a multiple of the network's downsampling,
batched through the network under ``torch.inference_mode`` in channels-last
memory format (optionally in bfloat16 autocast), passed through the sigmoid,
cropped back and stacked. Voxels outside the brain mask get probability 0.

Channels-last weights and inputs are faster on CPUs with the same output (float32
rounding); ``precision="bfloat16"`` is faster again on CPUs with bfloat16
instructions, with probabilities close to float32 (measured in BENCHMARKS.md).
Each slice is not cut to its own brain's bounding box: every distinct input shape
pays oneDNN's set-up, and the zero padding at the cut changes the masks.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from wmhkit.preprocess.patches import PLANE_AXIS, Plane, slices_along

DEFAULT_BATCH_SIZE = 8
#: Arithmetic of the forward pass: float32, or bfloat16 autocast (weights stay float32).
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def brain_bounding_box(brain_mask: np.ndarray) -> tuple[slice, slice, slice]:
    """Tight bounding box of the non-zero voxels of a 3D mask, as slices.

    Raises
    ------
    ValueError
        When the mask is empty.

    Examples
    --------
    >>> mask = np.zeros((4, 5, 6), bool); mask[1:3, 2, 0:6] = True
    >>> brain_bounding_box(mask)
    (slice(1, 3, None), slice(2, 3, None), slice(0, 6, None))
    """
    box = []
    for axis in range(3):
        present = np.flatnonzero(np.any(brain_mask, axis=tuple(a for a in range(3) if a != axis)))
        if present.size == 0:
            raise ValueError("the brain mask is empty; nothing to segment")
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def predict_plane(
    network: nn.Module,
    channels: np.ndarray,
    brain_mask: np.ndarray,
    plane: Plane,
    *,
    size_multiple: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str = "cpu",
    precision: str = "float32",
) -> np.ndarray:
    """WMH probability of every voxel from one plane's network.

    Parameters
    ----------
    network
        2D network mapping ``(N, C, H, W)`` to logits ``(N, 1, H, W)`` (eval mode).
        Inputs are given in ``torch.channels_last`` memory format; convert the
        network too (``network.to(memory_format=torch.channels_last)``) for speed.
    channels
        Prepared input images stacked as ``(C, X, Y, Z)`` in canonical RAS+ order.
    brain_mask
        Brain mask ``(X, Y, Z)``; only its bounding box is run through the network.
    plane
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    size_multiple
        Slices are zero-padded so that height and width are multiples of this.
    batch_size
        Slices per forward pass (outputs do not depend on it).
    device
        Where ``network`` lives.
    precision
        ``"float32"``, or ``"bfloat16"`` autocast: faster on CPUs with bfloat16
        instructions, probabilities close to float32's.

    Returns
    -------
    numpy.ndarray
        float32 ``(X, Y, Z)`` in [0, 1]; 0 outside the brain mask.
    """
    if channels.ndim != 4 or channels.shape[1:] != brain_mask.shape:
        raise ValueError(f"channels {channels.shape} must be (C, X, Y, Z) with (X, Y, Z) = brain mask {brain_mask.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if plane not in PLANE_AXIS:
        raise ValueError(f"plane must be one of {sorted(PLANE_AXIS)}, got {plane!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    brain = brain_mask.astype(bool)
    box = brain_bounding_box(brain)
    boxed = np.ascontiguousarray(channels[(slice(None), *box)], dtype=np.float32)
    # (C, X, Y, Z) -> (slices, C, H, W): channel axis kept second, plane axis first.
    stack = np.stack([slices_along(volume, plane) for volume in boxed], axis=1)
    height, width = stack.shape[2:]
    pad_h, pad_w = _padding(height, size_multiple), _padding(width, size_multiple)
    probabilities = np.empty((stack.shape[0], height, width), dtype=np.float32)
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bfloat16" else nullcontext()
    with torch.inference_mode(), autocast:
        for start in range(0, stack.shape[0], batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(stack[start : start + batch_size])).to(device)
            batch = F.pad(batch, (*pad_w, *pad_h)).contiguous(memory_format=torch.channels_last)
            logits = network(batch)[:, 0]
            cropped = logits[:, pad_h[0] : pad_h[0] + height, pad_w[0] : pad_w[0] + width]
            probabilities[start : start + batch_size] = torch.sigmoid(cropped.float()).cpu().numpy()
    wmh_prob = np.zeros(brain.shape, dtype=np.float32)
    wmh_prob[box] = np.moveaxis(probabilities, 0, PLANE_AXIS[plane])
    wmh_prob[~brain] = 0.0
    return wmh_prob


def _padding(size: int, multiple: int) -> tuple[int, int]:
    """Zero padding (before, after) taking ``size`` to the next multiple; the odd voxel goes after."""
    total = -size % multiple
    return total // 2, total - total // 2
