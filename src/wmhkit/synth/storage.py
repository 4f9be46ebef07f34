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
    written by :func:`save_codes` because that function always stores float32.
    """
    values = stored_values(image.array, dtype)
    if dtype == "float32":
        return save_image(image.with_array(values), path)
    return save_codes(values, image.affine, path)


def save_codes(codes: np.ndarray, affine: np.ndarray, path: str | os.PathLike[str], *, slope: float = 1.0,
               inter: float = 0.0) -> Path:
    """Write stored codes with the header scaling ``value = codes × slope + inter``, atomically.

    Parameters
    ----------
    codes
        The on-disk array, shape ``(X, Y, Z)``, in its storage dtype.
    affine
        Voxel-to-world (mm), written as sform and qform (code 1).
    path
        Output ``.nii`` / ``.nii.gz``.
    slope, inter
        NIfTI ``scl_slope`` / ``scl_inter``.
    """
    nifti = nib.Nifti1Image(codes, affine)
    nifti.header.set_data_dtype(codes.dtype)
    nifti.header.set_slope_inter(slope, inter)
    nifti.header.set_xyzt_units("mm", "sec")
    nifti.set_sform(affine, code=1)
    nifti.set_qform(affine, code=1)
    final = Path(path)
    with atomic_path(final) as tmp:
        nib.save(nifti, tmp)
    return final
