"""Seeds, deterministic mode and the random-number-generator states a checkpoint keeps.

wmhkit's training code draws every random number from generators derived from
``(seed, epoch, ...)`` (see :func:`epoch_generator`), so a run resumed at epoch k
sees exactly the data order and augmentations of an uninterrupted run. The global
RNG states are still saved and restored, for code (and libraries) that use them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's legacy global RNG and torch with ``seed`` (≥ 0), and use only deterministic torch
    algorithms (bit-identical CPU results run to run; on CUDA see PyTorch's reproducibility notes for
    ``CUBLAS_WORKSPACE_CONFIG``; cuDNN benchmarking off)."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def epoch_generator(seed: int, epoch: int, *stream: int) -> np.random.Generator:
    """A NumPy generator that depends only on ``(seed, epoch, *stream)``.

    Examples
    --------
    >>> a = epoch_generator(7, 3).integers(0, 1000, 3)
    >>> b = epoch_generator(7, 3).integers(0, 1000, 3)
    >>> bool((a == b).all())
    True
    """
    return np.random.default_rng([seed, epoch, *stream])


def rng_states() -> dict[str, Any]:
    """Global RNG states of Python, NumPy and torch, in types ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(numpy_state["state"]["key"], dtype=np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_states`."""
    python = states["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = states["numpy"]
    np.random.set_state({
        "bit_generator": numpy_state["bit_generator"],
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value
