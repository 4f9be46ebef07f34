"""torch's intra-op CPU thread count, set for the length of a block.

CPU kernels may sum in another order with another thread count, so a network's
outputs would differ in their last bits depending on where a scan ran; a step
run inside ``torch_threads(n)`` gives the same result in-process and on any
Dask worker (the torch counterpart of :mod:`wmhkit.itk_threads`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
