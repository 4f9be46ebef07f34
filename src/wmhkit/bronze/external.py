"""Import masks made by external tools as bronze masks on the FLAIR's native grid.

Kinds (the ``external_<kind>`` manifest column, or ``kind=`` in :func:`import_external`):

``freesurfer``
    ``aseg`` / ``aparc+aseg`` (``.mgz`` or NIfTI): WM-hypointensities label 77 and
    the left/right labels 78/79 become WMH.
``lst``
    LST ``ples_*`` lesion probability map: WMH where probability ≥ ``threshold``
    (default 0.5, LST's own default).
``bianca``
    BIANCA lesion probability map: WMH where probability ≥ ``threshold``
    (default 0.9, the FSL documentation's example threshold).
``ubo``
    UBO Detector's native-space WMH mask (binary).
``dlwmls``
    DLWMLS's WMH mask (CBICA's deep-learning WMH segmenter; binary, on the
    FLAIR grid as the NiChart pipeline writes it).
``mask``
    Any binary mask: background 0 and exactly one other value (1, 255, ...).

A mask on another grid is resampled onto the FLAIR grid with nearest neighbour
through world coordinates (FreeSurfer's conformed 256³ space shares the scanner
world with the T1 it came from, so this is exact). A mask
whose field of view does not meet the FLAIR's, or that loses more than
``MAX_LOST_FRACTION`` of its WMH outside the FLAIR's field of view, is refused
with a :class:`~wmhkit.errors.GeometryError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from wmhkit.bronze.register import resample_onto
from wmhkit.errors import GeometryError, InputError, MaskError
from wmhkit.io.image import Image
from wmhkit.io.nifti import load_image

#: External kinds and their default probability threshold (None: label or binary input).
EXTERNAL_KINDS: dict[str, float | None] = {"freesurfer": None, "lst": 0.5, "bianca": 0.9, "ubo": None, "dlwmls": None,
                                            "mask": None}
#: FreeSurfer aseg labels of WM hypointensities (77 WM-hypointensities, 78/79 Left/Right).
FREESURFER_WMH_LABELS: tuple[int, ...] = (77, 78, 79)
#: Largest fraction of an external mask's WMH volume allowed to fall outside the FLAIR's field of view.
MAX_LOST_FRACTION = 0.05


def import_external(
    path: str | os.PathLike[str],
    flair: Image,
    kind: str,
    *,
    threshold: float | None = None,
) -> Image:
    """Read an external tool's output and return a uint8 WMH mask on ``flair``'s grid.

    Parameters
    ----------
    path
        The tool's output file (NIfTI, or ``.mgz`` for FreeSurfer).
    flair
        The scan's native FLAIR (its grid and affine are the output's).
    kind
        One of :data:`EXTERNAL_KINDS`.
    threshold
        Probability threshold for ``lst`` / ``bianca`` (default per kind).

    Raises
    ------
    InputError
        Unknown kind, unreadable file, a threshold outside (0, 1].
    MaskError
        A ``mask``/``ubo`` file that is not binary, a probability map outside [0, 1].
    GeometryError
        When the mask cannot be placed on the FLAIR grid.
    """
    if kind not in EXTERNAL_KINDS:
        raise InputError(path, f"unknown external mask kind {kind!r}", f"use one of {', '.join(EXTERNAL_KINDS)}")
    path = Path(path)
    source = _load_any(path)
    wmh = _wmh_from(source, path, kind, threshold)
    if wmh.same_grid(flair):
        return flair.with_array(wmh.array)
    return _resample_onto(wmh, flair, path)


def _load_any(path: Path) -> Image:
    """Load NIfTI through wmhkit's validated loader, MGH/MGZ through nibabel."""
    if path.name.endswith(".mgz") or path.name.endswith(".mgh"):
        try:
            mgh = nib.load(str(path))
            data = np.asarray(mgh.dataobj)
        except Exception as exc:  # nibabel raises several types for corrupt files
            raise InputError(path, f"cannot read the MGH/MGZ file ({exc})", "re-export it from FreeSurfer") from exc
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise InputError(path, f"expected a 3D volume, got shape {data.shape}", "pass aseg.mgz or aparc+aseg.mgz")
        return Image(data, mgh.affine)
    return load_image(path)


def _wmh_from(source: Image, path: Path, kind: str, threshold: float | None) -> Image:
    values = source.array
    if kind == "freesurfer":
        return source.with_array(np.isin(np.rint(values).astype(np.int64), FREESURFER_WMH_LABELS).astype(np.uint8))
    if kind in ("lst", "bianca"):
        cut = EXTERNAL_KINDS[kind] if threshold is None else float(threshold)
        if not 0.0 < cut <= 1.0:
            raise InputError(path, f"threshold {cut} is outside (0, 1]", "give a probability threshold such as 0.5")
        if values.min() < -1e-6 or values.max() > 1.0 + 1e-6:
            raise MaskError(path, f"values span [{values.min():.4g}, {values.max():.4g}], not a probability map in [0, 1]",
                            f"pass the {kind} probability map, or import a binary mask with kind 'mask'")
        return source.with_array((values >= cut).astype(np.uint8))
    found = np.unique(values)
    positive = found[found != 0]
    if positive.size > 1 or np.any(found < 0):
        listed = ", ".join(f"{v:g}" for v in found[:10])
        raise MaskError(path, f"not a binary mask: values {listed}{' ...' if found.size > 10 else ''}",
                        "binarise it, or import a probability map with kind lst/bianca and a threshold")
    return source.with_array((values != 0).astype(np.uint8))


def _resample_onto(wmh: Image, flair: Image, path: Path) -> Image:
    result = resample_onto(wmh, flair, labels=True)
    _check_kept(wmh, result, path)
    return result


def _check_kept(wmh: Image, result: Image, path: Path) -> None:
    """Refuse a mask whose WMH voxels fall outside the FLAIR's field of view, or vanish on its grid."""
    voxels = np.argwhere(wmh.array > 0)
    if voxels.size == 0:
        return
    world = wmh.affine[:3, :3] @ voxels.T.astype(np.float64) + wmh.affine[:3, 3:4]
    index = np.linalg.inv(result.affine)[:3, :3] @ world + np.linalg.inv(result.affine)[:3, 3:4]
    inside = np.all((index > -0.5) & (index < np.asarray(result.shape)[:, None] - 0.5), axis=0)
    lost = 1.0 - float(inside.mean())
    if lost > MAX_LOST_FRACTION or not result.array.any():
        raise GeometryError(
            path, f"{lost:.0%} of the mask's WMH voxels lie outside the FLAIR's field of view "
            f"(mask grid {wmh.shape}, FLAIR grid {result.shape})",
            "check the mask belongs to this scan (and lies in the scanner world of its FLAIR)",
        )
