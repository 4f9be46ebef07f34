"""Write phantom images in a scanner's on-disk data type (uint16, int16, uint8 or float32)."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from wmhkit.io.atomic import atomic_path
from wmhkit.io.image import Image
from wmhkit.io.nifti import save_image

STORED_DTYPES: tuple[str, ...] = ("float32", "uint16", "int16", "uint8")


def stored_values(array: np.ndarray, dtype: str) -> np.ndarray:
    """Round and clip ``array`` into ``dtype``'s range (float32 is returned unchanged).

    Examples
    --------
    >>> stored_values(np.array([-3.0, 2.6, 300.0]), "uint8").tolist()
    [0, 3, 255]
    """
    if dtype not in STORED_DTYPES:
        raise ValueError(f"dtype must be one of {STORED_DTYPES}, got {dtype!r}")
    if dtype == "float32":
        return np.asarray(array, dtype=np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.rint(array), info.min, info.max).astype(dtype)


def save_scanner_image(image: Image, path: str | os.PathLike[str], dtype: str) -> Path:
    """Write ``image`` as NIfTI stored in ``dtype`` (slope 1, intercept 0), atomically.

    float32 goes through :func:`wmhkit.io.nifti.save_image`; integer types are
    written here because that function always stores float32.
    """
    values = stored_values(image.array, dtype)
    if dtype == "float32":
        return save_image(image.with_array(values), path)
    nifti = nib.Nifti1Image(values, image.affine)
    nifti.header.set_data_dtype(values.dtype)
    nifti.header.set_slope_inter(1.0, 0.0)
    nifti.header.set_xyzt_units("mm", "sec")
    nifti.set_sform(image.affine, code=1)
    nifti.set_qform(image.affine, code=1)
    final = Path(path)
    with atomic_path(final) as tmp:
        nib.save(nifti, tmp)
    return final
