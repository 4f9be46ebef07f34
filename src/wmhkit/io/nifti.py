"""NIfTI loading and saving with the validation of RELIABILITY.md.

Loading rules (one place, applied to every input):

* The file must exist, be non-empty, be gzip when named ``.gz``, and not be DICOM.
* The header is checked before any voxel is read: magic, dimensionality, voxel
  type (complex/RGB rejected), pixdim > 0, and the declared data size is capped
  (``max_bytes``) so that a tiny file declaring a 2048³ image is never allocated.
* Orientation: the sform when its code > 0, else the qform when its code > 0;
  both codes 0 is rejected (left/right would be unknown) unless
  ``allow_no_orientation``. A qform/sform disagreement beyond 0.1 mm is logged.
* The affine must be finite with ``|det| > 1e-6``; spacing always comes from it.
* ``scl_slope``/``scl_inter`` are applied; data are read in full (so truncated or
  corrupt files fail here, at validation, not later).
* Singleton 4th/5th dimensions are squeezed; real extra dimensions are rejected.
* NaN/Inf voxels: ``nan_policy="zero"`` (default) replaces them with 0 and logs a
  warning; ``"reject"`` raises.

Masks are always written as uint8 with slope 1 and intercept 0, images as float32.
Gzip output carries no timestamp (nibabel's deterministic gzip), so identical
arrays give identical bytes.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from wmhkit.errors import HeaderError, InputError, MaskError
from wmhkit.io.atomic import atomic_path
from wmhkit.io.image import Image

log = logging.getLogger(__name__)

NanPolicy = Literal["zero", "reject"]

#: Default cap on the declared voxel data size (bytes, as stored) of one image: 2 GiB.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: qform/sform disagreement (mm, max abs difference of affine entries) that is reported.
QFORM_SFORM_TOLERANCE_MM = 0.1
_MIN_ABS_DET = 1e-6
_REJECTED_DTYPE_KINDS = ("c",)  # complex
_DICOM_MAGIC_OFFSET = 128


def load_image(
    path: str | os.PathLike[str],
    *,
    nan_policy: NanPolicy = "zero",
    allow_no_orientation: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image:
    """Load and validate a 3D NIfTI intensity image.

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    nan_policy
        ``"zero"`` replaces NaN/Inf voxels by 0 with a warning; ``"reject"`` raises.
    allow_no_orientation
        Accept a file whose sform and qform codes are both 0 (nibabel's default
        scaled affine is then used); rejected by default since left/right is unknown.
    max_bytes
        Cap on the declared voxel data size; larger files are rejected before reading.

    Returns
    -------
    Image
        float32 array of shape ``(X, Y, Z)`` with the validated affine.

    Raises
    ------
    InputError, HeaderError
        Naming the file, the problem and the fix.
    """
    path = Path(path)
    nifti = _open_validated(path, allow_no_orientation=allow_no_orientation, max_bytes=max_bytes)
    data = _read_data(path, nifti)
    data = _to_3d(path, data)
    data = _apply_nan_policy(path, data, nan_policy)
    return Image(data.astype(np.float32, copy=False), nifti.affine)


def load_mask(
    path: str | os.PathLike[str],
    *,
    allowed_labels: tuple[int, ...] = (0, 1),
    allow_no_orientation: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image:
    """Load and validate a label image (WMH mask, brain mask, gold standard).

    Values must be whole numbers among ``allowed_labels`` (any stored dtype,
    float included); NaN is never accepted in a mask.

    Returns
    -------
    Image
        uint8 array of shape ``(X, Y, Z)``.

    Raises
    ------
    MaskError
        Listing the unexpected values and how to fix them.

    Examples
    --------
    A mask full of 255s (a common export) is refused with the values named; pass
    ``allowed_labels=(0, 255)`` and binarise it yourself if that is intended.
    """
    path = Path(path)
    nifti = _open_validated(path, allow_no_orientation=allow_no_orientation, max_bytes=max_bytes)
    data = _to_3d(path, _read_data(path, nifti))
    if not np.all(np.isfinite(data)):
        raise MaskError(path, "mask contains NaN or Inf voxels", "rewrite the mask with 0/1 values")
    values = np.unique(data)
    unexpected = [v for v in values.tolist() if v not in allowed_labels]
    if unexpected:
        shown = ", ".join(f"{v:g}" for v in unexpected[:10])
        more = f" (and {len(unexpected) - 10} more)" if len(unexpected) > 10 else ""
        raise MaskError(
            path,
            f"unexpected label values {shown}{more}; allowed are {list(allowed_labels)}",
            "binarise the mask (e.g. value > 0 → 1) or use the label option that matches it",
        )
    return Image(data.astype(np.uint8), nifti.affine)


def save_image(image: Image, path: str | os.PathLike[str]) -> Path:
    """Write an intensity or probability image as float32 NIfTI, atomically."""
    array = np.asarray(image.array, dtype=np.float32)
    return _save(array, image.affine, path, np.float32)


def save_mask(image: Image, path: str | os.PathLike[str]) -> Path:
    """Write a label image as uint8 NIfTI with slope 1 and intercept 0, atomically.

    Values must already be whole numbers in 0..255 (round and cast before calling);
    anything else raises ``ValueError`` rather than being silently scaled.
    """
    array = np.asarray(image.array)
    if array.dtype != np.uint8:
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("mask values must be whole numbers; round before saving")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError("mask values must lie in 0..255")
        array = array.astype(np.uint8)
    return _save(array, image.affine, path, np.uint8)


def _save(array: np.ndarray, affine: np.ndarray, path: str | os.PathLike[str], dtype: type) -> Path:
    nifti = nib.Nifti1Image(array, affine)
    header = nifti.header
    header.set_data_dtype(dtype)
    header.set_slope_inter(1.0, 0.0)
    header.set_xyzt_units("mm", "sec")
    nifti.set_sform(affine, code=1)
    nifti.set_qform(affine, code=1)
    final = Path(path)
    with atomic_path(final) as tmp:
        nib.save(nifti, tmp)
    return final


def _open_validated(path: Path, *, allow_no_orientation: bool, max_bytes: int) -> nib.Nifti1Image:
    _check_file_bytes(path)
    try:
        nifti = nib.load(path)
    except Exception as exc:  # nibabel raises many types on garbage; report them uniformly
        raise InputError(
            path,
            f"not a readable NIfTI file ({type(exc).__name__}: {exc})",
            "check that the file is a complete .nii or .nii.gz (re-export or re-convert it)",
        ) from exc
    if not isinstance(nifti, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(path, f"{type(nifti).__name__} is not NIfTI", "convert the image to NIfTI")
    header = nifti.header
    shape = tuple(int(s) for s in header.get_data_shape())
    _check_shape(path, shape)
    _check_dtype(path, header)
    _check_size(path, shape, header.get_data_dtype().itemsize, max_bytes)
    _check_pixdim(path, header, len(shape))
    _check_orientation(path, header, allow_no_orientation)
    _check_affine(path, nifti.affine)
    return nifti


def _check_file_bytes(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "file does not exist", "check the path (relative paths are relative to the manifest)")
    if not path.is_file():
        raise InputError(path, "not a regular file", "point to a .nii or .nii.gz file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "file is empty", "re-export or re-copy the scan")
    with open(path, "rb") as handle:
        head = handle.read(_DICOM_MAGIC_OFFSET + 4)
    is_gzip = head[:2] == b"\x1f\x8b"
    if head[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM":
        raise InputError(path, "file is DICOM, not NIfTI", "convert the series with dcm2niix")
    if path.name.endswith(".gz") and not is_gzip:
        raise InputError(path, "named .gz but not gzip-compressed", "rename it to .nii or gzip it")
    if is_gzip:
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(_DICOM_MAGIC_OFFSET + 4)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(path, f"corrupt gzip stream ({exc})", "re-copy or re-compress the file") from exc
        if head[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM":
            raise InputError(path, "file is gzipped DICOM, not NIfTI", "convert the series with dcm2niix")


def _check_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise HeaderError(path, f"invalid image shape {shape}", "check the header's dim field")
    extra = [s for s in shape[3:] if s != 1]
    if extra:
        raise HeaderError(
            path,
            f"image has shape {shape}; wmhkit needs one 3D volume",
            "extract a single volume (e.g. the first with fslroi or nibabel) before running",
        )


def _check_dtype(path: Path, header: nib.Nifti1Header) -> None:
    dtype = header.get_data_dtype()
    if dtype.kind in _REJECTED_DTYPE_KINDS or dtype.names is not None:
        raise HeaderError(
            path,
            f"voxel type {dtype} (complex or RGB) cannot be a FLAIR or mask",
            "convert the image to a real-valued scalar type (magnitude/grey level)",
        )


def _check_size(path: Path, shape: tuple[int, ...], itemsize: int, max_bytes: int) -> None:
    declared = int(np.prod(shape, dtype=np.float64)) * itemsize
    if declared > max_bytes:
        raise HeaderError(
            path,
            f"header declares {shape} voxels = {declared / 1024**3:.1f} GiB of data, above the "
            f"{max_bytes / 1024**3:.1f} GiB cap",
            "check the header (a corrupt dim field?) or raise max_bytes for genuinely large images",
        )


def _check_pixdim(path: Path, header: nib.Nifti1Header, ndim: int) -> None:
    pixdim = np.asarray(header["pixdim"][1 : 1 + min(ndim, 3)], dtype=np.float64)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim <= 0):
        raise HeaderError(
            path,
            f"voxel sizes (pixdim) {pixdim.tolist()} must be finite and positive",
            "fix the header's pixdim with the scanner's voxel size (e.g. nibabel set_zooms)",
        )


def _check_orientation(path: Path, header: nib.Nifti1Header, allow_no_orientation: bool) -> None:
    sform_code = int(header["sform_code"])
    qform_code = int(header["qform_code"])
    if sform_code == 0 and qform_code == 0 and not allow_no_orientation:
        raise HeaderError(
            path,
            "header has no orientation (sform_code and qform_code are both 0), so left and right are unknown",
            "set the orientation from the scanner's DICOM (e.g. reconvert with dcm2niix)"
            " or pass allow_no_orientation if you accept an unknown orientation",
        )
    if sform_code > 0 and qform_code > 0:
        difference = np.max(np.abs(header.get_sform() - header.get_qform()))
        if difference > QFORM_SFORM_TOLERANCE_MM:
            log.warning(
                "%s: sform and qform differ by up to %.3g mm; using the sform (code %d)",
                path, difference, sform_code,
            )


def _check_affine(path: Path, affine: np.ndarray) -> None:
    if not np.all(np.isfinite(affine)):
        raise HeaderError(path, "affine contains NaN or Inf", "rewrite the header's sform/qform")
    det = float(np.linalg.det(affine[:3, :3]))
    if abs(det) < _MIN_ABS_DET:
        raise HeaderError(
            path,
            f"affine is degenerate (determinant {det:.3g}); voxels have no volume",
            "rewrite the header's sform/qform with the scanner geometry",
        )


def _read_data(path: Path, nifti: nib.Nifti1Image) -> np.ndarray:
    try:
        # get_fdata applies scl_slope / scl_inter and reads every byte, so truncated
        # or corrupt files fail here. float64 cannot wrap uint16/uint32/int64 values.
        return np.asarray(nifti.get_fdata(dtype=np.float64))
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(
            path,
            f"voxel data cannot be read ({type(exc).__name__}: {exc})",
            "the file is truncated or corrupt; re-copy or re-export it",
        ) from exc


def _to_3d(path: Path, data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        return data[:, :, np.newaxis]
    if data.ndim > 3:
        if any(s != 1 for s in data.shape[3:]):
            raise HeaderError(path, f"image has shape {data.shape}; wmhkit needs one 3D volume",
                              "extract a single volume before running")
        data = data.reshape(data.shape[:3])
    return data


def _apply_nan_policy(path: Path, data: np.ndarray, nan_policy: NanPolicy) -> np.ndarray:
    finite = np.isfinite(data)
    if finite.all():
        return data
    count = int(data.size - finite.sum())
    if nan_policy == "reject":
        raise InputError(path, f"{count} voxels are NaN or Inf", "fix the image or load it with nan_policy='zero'")
    if nan_policy != "zero":
        raise ValueError(f"nan_policy must be 'zero' or 'reject', got {nan_policy!r}")
    log.warning("%s: %d NaN/Inf voxels replaced by 0", path, count)
    return np.where(finite, data, 0.0)
