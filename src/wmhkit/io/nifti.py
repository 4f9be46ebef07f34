"""NIfTI loading and saving with the validation of RELIABILITY.md.

Loading rules (one place, applied to every input):

* The file must exist, be non-empty, be gzip exactly when named ``.gz``, and not
  be DICOM.
* The raw header is checked before nibabel reads it and before any voxel is
  read: header size and magic (single-file NIfTI-1 or NIfTI-2), dimensionality,
  voxel type (complex/RGB rejected), pixdim > 0, ``vox_offset``, the header
  extension chain, and scaling fields. nibabel silently "fixes" some of these
  (e.g. negative pixdim becomes positive), which is why they are read raw.
* Size caps: the declared data size plus ``vox_offset`` (the bytes that will be
  decompressed) must not exceed ``max_bytes``, so that a tiny file declaring a
  2048³ image is refused before anything is allocated; nibabel reads only the
  declared bytes, so trailing data in a gzip bomb is never decompressed.
* Orientation: the sform when its code > 0, else the qform when its code > 0;
  both codes 0 is rejected (left/right would be unknown) unless
  ``allow_no_orientation``. A qform/sform disagreement beyond 0.1 mm is logged.
* The affine must be finite with ``|det| > 1e-6``; spacing always comes from it.
* ``scl_slope``/``scl_inter`` are applied; data are read in full (so truncated or
  corrupt files fail here, at validation, not later).
* Singleton 4th/5th dimensions are squeezed; real extra dimensions are rejected;
  2D images become one-slice 3D images.
* NaN/Inf voxels (including values beyond the float32 range): ``nan_policy="zero"``
  (default) replaces them with 0 and logs a warning; ``"reject"`` raises.

Every failure is a :class:`~wmhkit.errors.InputError` (or subclass) naming the
file and the fix. Masks are always written as uint8 with slope 1 and intercept 0,
images as float32. Gzip output carries no timestamp or file name (nibabel's
deterministic gzip), so identical arrays give identical bytes.
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

from wmhkit.errors import HeaderError, InputError, MaskError, WmhkitError
from wmhkit.io.atomic import atomic_path
from wmhkit.io.image import Image

log = logging.getLogger(__name__)

NanPolicy = Literal["zero", "reject"]
#: File name endings of NIfTI files, longest first.
NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: Default cap on the bytes decompressed for one image (header + extensions + voxel data): 2 GiB.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Cap on the header plus its extensions (``vox_offset``); real extensions are kilobytes.
MAX_HEADER_BYTES = 64 * 1024**2
#: qform/sform disagreement (mm, max abs difference of affine entries) that is reported.
QFORM_SFORM_TOLERANCE_MM = 0.1
_MIN_ABS_DET = 1e-6
_ACCEPTED_DTYPE_KINDS = ("u", "i", "f")  # unsigned, signed, floating; complex/RGB/void rejected
_DICOM_MAGIC_OFFSET = 128
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_CLASSES = (nib.Nifti1Header, nib.Nifti2Header)
_NIFTI_PAIR_MAGICS = (b"ni1", b"ni2")


def nifti_stem(path: Path) -> str | None:
    """``path``'s name without its NIfTI ending (``sub-01_FLAIR.nii.gz`` → ``sub-01_FLAIR``); None for another file."""
    return next((path.name[: -len(suffix)] for suffix in NIFTI_SUFFIXES if path.name.endswith(suffix)), None)


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
        ``"zero"`` replaces NaN/Inf voxels (and values beyond the float32 range)
        by 0 with a warning; ``"reject"`` raises.
    allow_no_orientation
        Accept a file whose sform and qform codes are both 0 (nibabel's default
        scaled affine is then used); rejected by default since left/right is unknown.
    max_bytes
        Cap on the bytes to decompress (``vox_offset`` + declared voxel data);
        larger files are rejected before reading.

    Returns
    -------
    Image
        float32 array of shape ``(X, Y, Z)`` with the validated affine; a 2D
        image becomes shape ``(X, Y, 1)``.

    Raises
    ------
    InputError, HeaderError
        Naming the file, the problem and the fix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> flair = Image(np.ones((4, 4, 2), np.float32), np.diag([0.5, 0.5, 5.0, 1.0]))
    >>> loaded = load_image(save_image(flair, folder / "flair.nii.gz"))
    >>> loaded.shape, loaded.spacing_mm, loaded.array.dtype
    ((4, 4, 2), (0.5, 0.5, 5.0), dtype('float32'))
    """
    if nan_policy not in ("zero", "reject"):
        raise ValueError(f"nan_policy must be 'zero' or 'reject', got {nan_policy!r}")
    path = Path(path)
    nifti = _open_validated(path, allow_no_orientation=allow_no_orientation, max_bytes=max_bytes)
    data = _to_3d(_read_data(path, nifti))
    # Values beyond the float32 range become Inf here and are then handled by the NaN policy.
    with np.errstate(over="ignore", invalid="ignore"):
        data = np.asarray(data, dtype=np.float32)
    data = _apply_nan_policy(path, data, nan_policy)
    return Image(data, nifti.affine)


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

    Parameters
    ----------
    path
        ``.nii`` or ``.nii.gz`` file.
    allowed_labels
        Label values the mask may hold, each in 0..255.
    allow_no_orientation, max_bytes
        As for :func:`load_image`.

    Returns
    -------
    Image
        uint8 array of shape ``(X, Y, Z)``.

    Raises
    ------
    MaskError
        Listing the unexpected values and how to fix them, or for NaN/Inf voxels.
    InputError, HeaderError
        As for :func:`load_image`.

    Examples
    --------
    A mask full of 255s (a common export) is refused with the values named; pass
    ``allowed_labels=(0, 255)`` and binarise it yourself if that is intended.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> wmh = Image(np.full((2, 2, 2), 255, np.uint8), np.eye(4))
    >>> path = save_mask(wmh, folder / "wmh.nii.gz")
    >>> load_mask(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    wmhkit.errors.MaskError: ...wmh.nii.gz: unexpected label values 255; allowed are [0, 1]...
    >>> int(load_mask(path, allowed_labels=(0, 255)).array.max())
    255
    """
    bad_labels = [label for label in allowed_labels if not 0 <= int(label) <= 255 or int(label) != label]
    if bad_labels:
        raise ValueError(f"allowed_labels must be whole numbers in 0..255, got {bad_labels}")
    path = Path(path)
    nifti = _open_validated(path, allow_no_orientation=allow_no_orientation, max_bytes=max_bytes)
    data = _to_3d(_read_data(path, nifti))
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise MaskError(path, "mask contains NaN or Inf voxels", "rewrite the mask with 0/1 values")
    values = np.unique(data)
    unexpected = [v for v in values.tolist() if v not in allowed_labels]
    if unexpected:
        shown = ", ".join(_format_label(v) for v in unexpected[:10])
        more = f" (and {len(unexpected) - 10} more)" if len(unexpected) > 10 else ""
        raise MaskError(
            path,
            f"unexpected label values {shown}{more}; allowed are {list(allowed_labels)}",
            "binarise the mask (e.g. value > 0 → 1) or use the label option that matches it",
        )
    return Image(data.astype(np.uint8), nifti.affine)


def save_image(image: Image, path: str | os.PathLike[str]) -> Path:
    """Write an intensity or probability image as float32 NIfTI, atomically.

    Raises
    ------
    ValueError
        When a value is NaN, Inf or beyond the float32 range (never written).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.asarray(image.array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError("image values must be finite and within the float32 range; fix NaN/Inf before saving")
    return _save(array, image.affine, path, np.float32)


def save_mask(image: Image, path: str | os.PathLike[str]) -> Path:
    """Write a label image as uint8 NIfTI with slope 1 and intercept 0, atomically.

    Values must already be whole numbers in 0..255 (round and cast before calling);
    anything else raises ``ValueError`` rather than being silently scaled.
    """
    array = np.asarray(image.array)
    if array.dtype != np.uint8:
        if array.dtype.kind not in "biuf":
            raise ValueError(f"mask values must be real numbers, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("mask values must be whole numbers; round before saving")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError("mask values must lie in 0..255")
        array = array.astype(np.uint8)
    return _save(array, image.affine, path, np.uint8)


def _format_label(value: float) -> str:
    """Whole values as integers, others exactly (``1.0000001`` must not print as ``1``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


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
    is_gzip = _check_file_bytes(path)
    _check_raw_header(path, is_gzip, max_bytes)
    try:
        # mmap=False: the data are copied in full at validation, and a file truncated
        # later cannot crash a memory-mapped read.
        nifti = nib.load(path, mmap=False)
    except MemoryError:  # the machine, not the file: never reported as a corrupt input
        raise
    except Exception as exc:  # nibabel raises many types on malformed files; report them uniformly
        raise InputError(
            path,
            f"not a readable NIfTI file ({type(exc).__name__}: {exc})",
            "check that the file is a complete .nii or .nii.gz (re-export or re-convert it)",
        ) from exc
    if not isinstance(nifti, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(path, f"{type(nifti).__name__} is not NIfTI", "convert the image to NIfTI")
    try:
        _check_orientation(path, nifti.header, allow_no_orientation)
        _check_affine(path, nifti.affine)
    except WmhkitError:
        raise
    except Exception as exc:  # e.g. a quaternion nibabel cannot turn into a rotation
        raise HeaderError(
            path,
            f"orientation (qform/sform) cannot be read ({type(exc).__name__}: {exc})",
            "rewrite the header's sform/qform with the scanner geometry",
        ) from exc
    return nifti


def _check_file_bytes(path: Path) -> bool:
    """Check existence, emptiness, gzip framing and DICOM; return whether the file is gzip."""
    if not path.exists():
        raise InputError(path, "file does not exist", "check the path (relative paths are relative to the manifest)")
    if not path.is_file():
        raise InputError(path, "not a regular file", "point to a .nii or .nii.gz file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty", "re-export or re-copy the scan")
    with open(path, "rb") as handle:
        head = handle.read(_DICOM_MAGIC_OFFSET + 4)
    is_gzip = head[:2] == _GZIP_MAGIC
    if head[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM":
        raise InputError(path, "file is DICOM, not NIfTI", "convert the series with dcm2niix")
    if path.name.endswith(".gz") and not is_gzip:
        raise InputError(path, "named .gz but not gzip-compressed", "rename it to .nii or gzip it")
    if is_gzip and not path.name.endswith(".gz"):
        raise InputError(path, "gzip-compressed but not named .gz", "rename it to .nii.gz")
    if is_gzip:
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(_DICOM_MAGIC_OFFSET + 4)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(path, f"corrupt gzip stream ({exc})", "re-copy or re-compress the file") from exc
        if head[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM":
            raise InputError(path, "file is gzipped DICOM, not NIfTI", "convert the series with dcm2niix")
    return is_gzip


def _check_raw_header(path: Path, is_gzip: bool, max_bytes: int) -> None:
    """Read and check the header as stored, before nibabel's automatic fixes.

    Also reads the extension area (bounded by ``MAX_HEADER_BYTES``) to check the
    extension chain, since nibabel follows a malformed one to the end of the file.
    """
    opener = gzip.open if is_gzip else open
    try:
        with opener(path, "rb") as handle:
            block = handle.read(nib.Nifti2Header.sizeof_hdr + 4)
            header_class = _header_class(path, block)
            header = header_class(block[: header_class.sizeof_hdr], check=False)
            _check_raw_fields(path, header, max_bytes)
            # Flag bytes plus extensions, up to vox_offset (bounded by _check_size).
            extension_size = int(header["vox_offset"]) - header_class.sizeof_hdr
            extension_area = block[header_class.sizeof_hdr :]
            if extension_area[:1] not in (b"", b"\x00"):
                extension_area += handle.read(max(0, extension_size - len(extension_area)))
                extension_area = extension_area[:extension_size]
    except WmhkitError:
        raise
    except Exception as exc:  # corrupt gzip, unreadable bytes, malformed fields
        raise InputError(
            path,
            f"header cannot be read ({type(exc).__name__}: {exc})",
            "the file is truncated or not NIfTI; re-copy, re-export or re-convert it",
        ) from exc
    _check_extensions(path, header, extension_area)


def _header_class(path: Path, block: bytes) -> type[nib.Nifti1Header]:
    for header_class in _HEADER_CLASSES:
        size = header_class.sizeof_hdr
        if len(block) >= size and size in (
            int.from_bytes(block[:4], "little"),
            int.from_bytes(block[:4], "big"),
        ):
            return header_class
    raise InputError(
        path,
        "not a NIfTI file (the header size field is neither 348 nor 540, or the file is too short)",
        "check that the file is a complete .nii or .nii.gz (re-export or re-convert it)",
    )


def _check_raw_fields(path: Path, header: nib.Nifti1Header, max_bytes: int) -> None:
    magic = bytes(header["magic"].item())
    if magic in _NIFTI_PAIR_MAGICS:
        raise HeaderError(
            path, "header is of a .hdr/.img pair", "convert the pair to a single .nii.gz (e.g. with nibabel)"
        )
    if magic != bytes(header.single_magic):
        raise HeaderError(path, f"bad magic {magic!r} (not NIfTI)", "re-export or re-convert the image as NIfTI")
    shape = _declared_shape(header)
    _check_shape(path, shape)
    dtype = _check_dtype(path, header)
    _check_pixdim(path, header, len(shape))
    _check_scaling(path, header)
    _check_size(path, header, shape, dtype.itemsize, max_bytes)


def _declared_shape(header: nib.Nifti1Header) -> tuple[int, ...]:
    dim = [int(d) for d in header["dim"]]
    if not 1 <= dim[0] <= 7:
        return (dim[0],)  # invalid rank; _check_shape reports it
    return tuple(dim[1 : dim[0] + 1])


def _check_shape(path: Path, shape: tuple[int, ...]) -> None:
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise HeaderError(path, f"invalid image shape {shape}", "check the header's dim field")
    if any(s != 1 for s in shape[3:]):
        raise HeaderError(
            path,
            f"image has shape {shape}; wmhkit needs one 3D volume",
            "extract a single volume (e.g. the first with fslroi or nibabel) before running",
        )


def _check_dtype(path: Path, header: nib.Nifti1Header) -> np.dtype:
    code = int(header["datatype"])
    try:
        dtype = np.dtype(header.get_data_dtype())
    except Exception as exc:  # unknown code: nibabel's lookup raises KeyError/HeaderDataError
        raise HeaderError(
            path, f"unknown voxel type (datatype code {code})", "re-export the image with a standard voxel type"
        ) from exc
    if dtype.kind not in _ACCEPTED_DTYPE_KINDS:
        label = nib.nifti1.data_type_codes.label.get(code, str(dtype))
        raise HeaderError(
            path,
            f"voxel type {label} (datatype code {code}) is not a real-valued scalar; complex and RGB images"
            " cannot be a FLAIR or mask",
            "convert the image to a real-valued scalar type (magnitude/grey level)",
        )
    return dtype


def _check_pixdim(path: Path, header: nib.Nifti1Header, ndim: int) -> None:
    pixdim = np.asarray(header["pixdim"][1 : 1 + min(ndim, 3)], dtype=np.float64)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim <= 0):
        raise HeaderError(
            path,
            f"voxel sizes (pixdim) {pixdim.tolist()} must be finite and positive",
            "fix the header's pixdim with the scanner's voxel size (e.g. nibabel set_zooms)",
        )


def _check_scaling(path: Path, header: nib.Nifti1Header) -> None:
    slope = float(header["scl_slope"])
    inter = float(header["scl_inter"])
    # A slope of 0 or non-finite means "no scaling" (NIfTI standard, nibabel); only a
    # valid slope with an invalid intercept is an error.
    if slope != 0 and np.isfinite(slope) and not np.isfinite(inter):
        raise HeaderError(path, f"scl_inter is {inter} with scl_slope {slope}", "set scl_inter to a finite value")


def _check_size(path: Path, header: nib.Nifti1Header, shape: tuple[int, ...], itemsize: int, max_bytes: int) -> None:
    vox_offset = float(header["vox_offset"])
    minimum = int(header.single_vox_offset)
    if not np.isfinite(vox_offset) or vox_offset < minimum or vox_offset > MAX_HEADER_BYTES:
        raise HeaderError(
            path,
            f"vox_offset {vox_offset:g} is outside {minimum}..{MAX_HEADER_BYTES} bytes",
            "rewrite the header (e.g. re-save the image with nibabel)",
        )
    declared = float(np.prod(shape, dtype=np.float64)) * itemsize
    if declared + vox_offset > max_bytes:
        raise HeaderError(
            path,
            f"header declares shape {shape} of {itemsize}-byte voxels = {declared / 1024**2:.1f} MiB"
            f" (plus {vox_offset:g} header bytes), above the {max_bytes / 1024**2:.1f} MiB cap",
            "check the header (a corrupt dim field?) or raise max_bytes for genuinely large images",
        )


def _check_extensions(path: Path, header: nib.Nifti1Header, extension_area: bytes) -> None:
    """Walk the extension chain as nibabel will, refusing sizes that leave the header area."""
    if len(extension_area) < 4 or extension_area[:1] == b"\x00":
        return  # no extensions (or none announced)
    byteorder = "big" if header.endianness == ">" else "little"
    position = 4
    remaining = int(header["vox_offset"]) - header.sizeof_hdr - 4
    if len(extension_area) < remaining + 4:
        raise InputError(path, "file ends inside the header extensions", "re-copy or re-export the scan")
    while remaining >= 16:
        esize = int.from_bytes(extension_area[position : position + 4], byteorder, signed=True)
        if not 16 <= esize <= remaining:
            raise HeaderError(
                path,
                f"malformed header extension (size {esize} with {remaining} bytes left before the data)",
                "strip the extensions (e.g. re-save with nibabel after clearing header.extensions)",
            )
        position += esize
        remaining -= esize


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
        with np.errstate(invalid="ignore", over="ignore"):
            difference = float(np.max(np.abs(header.get_sform() - header.get_qform())))
        if not difference <= QFORM_SFORM_TOLERANCE_MM:  # also true for NaN
            log.warning(
                "%s: sform and qform differ by up to %.3g mm; using the sform (code %d)",
                path, difference, sform_code,
            )


def _check_affine(path: Path, affine: np.ndarray) -> None:
    if not np.all(np.isfinite(affine)):
        raise HeaderError(path, "affine contains NaN or Inf", "rewrite the header's sform/qform")
    with np.errstate(over="ignore", invalid="ignore"):
        det = float(np.linalg.det(affine[:3, :3]))
    if not (np.isfinite(det) and abs(det) > _MIN_ABS_DET):
        raise HeaderError(
            path,
            f"affine is degenerate (determinant {det:.3g}); voxels have no volume",
            "rewrite the header's sform/qform with the scanner geometry",
        )


def _read_data(path: Path, nifti: nib.Nifti1Image) -> np.ndarray:
    """Read every voxel, scaled by scl_slope/scl_inter, in its stored or scaled dtype.

    The stored dtype is kept (not cast to a narrower one), so uint16/uint32/int64
    values never wrap; nibabel returns a float array when scaling applies.
    """
    try:
        return np.asarray(nifti.dataobj)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(
            path,
            f"voxel data cannot be read ({type(exc).__name__}: {exc})",
            "the file is truncated or corrupt; re-copy or re-export it",
        ) from exc


def _to_3d(data: np.ndarray) -> np.ndarray:
    """2D → one slice; singleton 4th+ dimensions (already checked in the header) squeezed."""
    if data.ndim == 2:
        return data[:, :, np.newaxis]
    return data.reshape(data.shape[:3])


def _apply_nan_policy(path: Path, data: np.ndarray, nan_policy: NanPolicy) -> np.ndarray:
    finite = np.isfinite(data)
    if finite.all():
        return data
    count = int(data.size - np.count_nonzero(finite))
    if nan_policy == "reject":
        raise InputError(
            path,
            f"{count} voxels are NaN, Inf or beyond the float32 range",
            "fix the image or load it with nan_policy='zero'",
        )
    log.warning("%s: %d NaN/Inf (or beyond float32 range) voxels replaced by 0", path, count)
    return np.where(finite, data, np.float32(0.0))
