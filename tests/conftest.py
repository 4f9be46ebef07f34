"""Shared test fixtures."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def _craft_nifti(
    path: Path,
    array: np.ndarray,
    affine: np.ndarray | None = None,
    *,
    sform: np.ndarray | None = None,
    **fields: object,
) -> Path:
    """Write ``array`` as NIfTI-1 to ``path`` (gzip when named .gz) with raw header edits.

    ``affine`` (default identity) sets both qform and sform through nibabel;
    ``sform`` then overwrites the srow fields verbatim (even a degenerate matrix);
    ``fields`` overwrite header fields as stored (``pixdim``, ``magic``,
    ``sform_code``, ``scl_slope``, ...), after nibabel's own fixes, so they reach
    the file unaltered.
    """
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    nifti = nib.Nifti1Image(array, affine, dtype=np.asarray(array).dtype)
    nifti.set_sform(affine, code=1)
    nifti.set_qform(affine, code=1)
    stored = nifti.to_bytes()
    header = nib.Nifti1Header(stored[:348], check=False)
    if sform is not None:
        header["srow_x"], header["srow_y"], header["srow_z"] = np.asarray(sform)[:3]
    for name, value in fields.items():
        header[name] = value
    data = header.binaryblock + stored[348:]
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def craft_nifti() -> Callable[..., Path]:
    """Function writing a tiny NIfTI with raw header edits: ``craft_nifti(path, array, affine, **fields)``."""
    return _craft_nifti
