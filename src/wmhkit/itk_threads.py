"""ITK's global default thread count, set for the length of a block.

SimpleITK filters take the global default when they are created, and several
filters (N4's internal B-spline fitting, the registration metric) read it even
when their own thread setting says otherwise. Multi-threaded sums are added in a
varying order, so a step that must be bit-reproducible runs inside
``itk_threads(1)``; the cohort runner uses the same block to size each worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import SimpleITK as sitk


@contextlib.contextmanager
def itk_threads(threads: int | None) -> Iterator[None]:
    """ITK's default thread count set to ``threads`` inside the block (unchanged for ``None``), restored after."""
    if threads is None:
        yield
        return
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
