"""WMH volumetry of one scan: total, % of intracranial volume, periventricular vs deep, lesions.

All volumes are voxel counts times the voxel volume of the grid's affine, in mL.

* **Intracranial volume** is estimated by the brain-mask volume (the mask
  ``prepare`` used: given, or computed), and ``wmh_pct_icv = 100 · wmh_ml / icv_ml``.
* **Ventricles** (:func:`estimate_ventricles`) are the CSF spaces that the outside
  of the brain does not reach: voxels dark on FLAIR (below :data:`~wmhkit.metrics.volume_eval.DARK_FRACTION` of
  the median brain intensity) or outside the brain mask, grouped into
  26-connected components; components that touch the grid's border (background
  and the sulcal CSF opening onto it) are the outside, and the enclosed ones of
  at least :data:`MIN_VENTRICLE_ML` are the lateral and third ventricles. The same
  rule builds the phantoms' ventricles from the template's CSF
  (:mod:`wmhkit.synth.template`). It needs the brain mask to close over the
  ventricles or to leave them as holes, both of which count as enclosed. When
  the dark CSF joins the ventricles to the outside (thick slices, whose partial
  volumes darken the third ventricle and the cisterns, or a brain mask open at
  the midline), nothing is enclosed: the ventricles are then the dark components
  of at least :data:`MIN_VENTRICLE_ML` that lie deeper than
  :data:`VENTRICLE_MIN_DEPTH_MM` inside the brain mask, where sulcal CSF does not
  reach. When neither finds one, the reason is logged.
* **Periventricular** WMH voxels lie within ``pv_distance_mm`` (default 10 mm,
  the "10 mm rule" of Griffanti et al., NeuroImage Clin 2018) of the ventricles,
  by Euclidean distance in mm between voxel centres; the rest are **deep**.
  The split is voxel-wise, so ``periventricular_ml + deep_ml == wmh_ml``. When no
  ventricle is found both are undefined (empty cells), never guessed.
* **Lesions** are 26-connected components of the mask (the MICCAI 2017 convention
  of :mod:`wmhkit.metrics.segmentation`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.metrics.volume_eval import DARK_FRACTION

log = logging.getLogger(__name__)

DEFAULT_PV_DISTANCE_MM = 10.0
#: Smallest enclosed CSF component kept as ventricle (mL).
MIN_VENTRICLE_ML = 1.0
#: Depth inside the brain mask (mm) beyond which dark components are ventricles when none is enclosed.
VENTRICLE_MIN_DEPTH_MM = 10.0
#: Decimals kept in volumes (mL): 1e-6 mL = 1e-3 mm³, far below a voxel.
VOLUME_DECIMALS = 6
_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class WmhVolumes:
    """Volumetry of one WMH mask (mL unless stated).

    ``periventricular_ml`` and ``deep_ml`` are None when no ventricle was found.
    """

    wmh_ml: float
    icv_ml: float
    wmh_pct_icv: float
    periventricular_ml: float | None
    deep_ml: float | None
    pv_distance_mm: float
    lesion_count: int
    ventricle_ml: float

    def as_row(self) -> dict[str, float | int | None]:
        """Column → value, in :data:`VOLUME_COLUMNS` order."""
        return {name: getattr(self, name) for name in VOLUME_COLUMNS}


#: Columns of :class:`WmhVolumes` in ``volumes.csv`` order.
VOLUME_COLUMNS: tuple[str, ...] = (
    "wmh_ml", "wmh_pct_icv", "icv_ml", "periventricular_ml", "deep_ml", "pv_distance_mm", "lesion_count",
    "ventricle_ml",
)


def estimate_ventricles(flair: Image, brain_mask: Image) -> Image:
    """Ventricle mask from a FLAIR and its brain mask (rule in the module docstring).

    Parameters
    ----------
    flair
        FLAIR image (any intensity scale; CSF dark), shape ``(X, Y, Z)``.
    brain_mask
        Brain mask on the same grid.

    Returns
    -------
    Image
        uint8 mask (0/1) on the FLAIR grid; empty when no ventricle is found.

    Raises
    ------
    ValueError
        When the two images are not on one grid or the brain mask is empty.
    """
    if not flair.same_grid(brain_mask):
        raise ValueError(f"FLAIR grid {flair.shape} and brain mask grid {brain_mask.shape} differ")
    brain = brain_mask.array.astype(bool)
    if not brain.any():
        raise ValueError("the brain mask is empty; cannot look for ventricles")
    threshold = DARK_FRACTION * float(np.median(flair.array[brain]))
    candidate = (flair.array < threshold) | ~brain
    labels, count = ndimage.label(candidate, structure=_FULL_CONNECTIVITY)
    border = np.unique(np.concatenate([
        labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()
    ]))
    sizes_ml = np.bincount(labels.ravel(), minlength=count + 1) * flair.voxel_volume_ml
    enclosed = np.setdiff1d(np.flatnonzero(sizes_ml >= MIN_VENTRICLE_ML), np.append(border, 0))
    ventricles = np.isin(labels, enclosed)
    if not ventricles.any():
        ventricles = _deep_dark_components(flair, brain, threshold)
        if ventricles.any():
            log.info("ventricles: the dark CSF reaches the outside of the brain (thick slices or an open brain mask);"
                     " taking the dark regions deeper than %g mm inside the brain (%.1f mL)", VENTRICLE_MIN_DEPTH_MM,
                     np.count_nonzero(ventricles) * flair.voxel_volume_ml)
        else:
            log.warning("no ventricles found: no dark region (below %g of the median brain intensity) of at least "
                        "%g mL is enclosed by the brain or lies deeper than %g mm inside it", DARK_FRACTION,
                        MIN_VENTRICLE_ML, VENTRICLE_MIN_DEPTH_MM)
    return flair.with_array(ventricles.astype(np.uint8))


def _deep_dark_components(flair: Image, brain: np.ndarray, threshold: float) -> np.ndarray:
    """Dark voxels deeper than :data:`VENTRICLE_MIN_DEPTH_MM` in ``brain``, in components of at least
    :data:`MIN_VENTRICLE_ML` (boolean mask on the FLAIR grid)."""
    depth = ndimage.distance_transform_edt(brain, sampling=flair.spacing_mm)
    deep_dark = (flair.array < threshold) & (depth > VENTRICLE_MIN_DEPTH_MM)
    labels, count = ndimage.label(deep_dark, structure=_FULL_CONNECTIVITY)
    sizes_ml = np.bincount(labels.ravel(), minlength=count + 1) * flair.voxel_volume_ml
    kept = np.flatnonzero(sizes_ml >= MIN_VENTRICLE_ML)
    return np.isin(labels, kept[kept > 0])


def distance_to_mask_mm(mask: Image) -> np.ndarray:
    """Euclidean distance (mm) from each voxel centre to the nearest voxel of ``mask`` (0 inside).

    Spacing comes from the affine; the distance is exact for any grid whose axes
    are orthogonal (oblique storage included), as every NIfTI affine without shear is.

    Raises
    ------
    ValueError
        When ``mask`` is empty.
    """
    inside = mask.array.astype(bool)
    if not inside.any():
        raise ValueError("the mask is empty; distances to it are undefined")
    return ndimage.distance_transform_edt(~inside, sampling=mask.spacing_mm).astype(np.float32)


def count_lesions(wmh: np.ndarray) -> int:
    """Number of 26-connected components of a binary mask.

    Examples
    --------
    >>> mask = np.zeros((5, 5, 5), np.uint8); mask[0, 0, 0] = mask[1, 1, 1] = mask[3, 3, 3] = 1
    >>> count_lesions(mask)
    2
    """
    return int(ndimage.label(np.asarray(wmh).astype(bool), structure=_FULL_CONNECTIVITY)[1])


def wmh_volumes(
    wmh: Image, brain_mask: Image, ventricles: Image, *, pv_distance_mm: float = DEFAULT_PV_DISTANCE_MM
) -> WmhVolumes:
    """Volumetry of a WMH mask (definitions in the module docstring).

    Parameters
    ----------
    wmh
        Binary WMH mask ``(X, Y, Z)``.
    brain_mask
        Brain mask on the same grid (the intracranial volume estimate).
    ventricles
        Ventricle mask on the same grid (e.g. :func:`estimate_ventricles`); may be empty.
    pv_distance_mm
        Largest distance (mm) from the ventricles of a periventricular voxel.

    Returns
    -------
    WmhVolumes
        An empty mask gives ``wmh_ml == 0.0`` (never NaN).

    Raises
    ------
    ValueError
        For images on different grids, an empty brain mask or a negative distance.

    Examples
    --------
    >>> affine = np.diag([1.0, 1.0, 2.0, 1.0])
    >>> brain = Image(np.ones((10, 10, 10), np.uint8), affine)
    >>> wmh = brain.with_array(np.zeros((10, 10, 10), np.uint8))
    >>> wmh_volumes(wmh, brain, wmh).wmh_ml, wmh_volumes(wmh, brain, wmh).icv_ml
    (0.0, 2.0)
    """
    if pv_distance_mm < 0:
        raise ValueError(f"pv_distance_mm must be >= 0, got {pv_distance_mm}")
    for name, image in (("brain mask", brain_mask), ("ventricle mask", ventricles)):
        if not wmh.same_grid(image):
            raise ValueError(f"WMH mask grid {wmh.shape} and {name} grid {image.shape} differ")
    lesion = wmh.array.astype(bool)
    voxel_ml = wmh.voxel_volume_ml
    icv_ml = _ml(np.count_nonzero(brain_mask.array), voxel_ml)
    if icv_ml == 0:
        raise ValueError("the brain mask is empty; the intracranial volume is undefined")
    wmh_ml = _ml(np.count_nonzero(lesion), voxel_ml)
    periventricular_ml = deep_ml = None
    if ventricles.array.any():
        near = distance_to_mask_mm(ventricles) <= pv_distance_mm
        periventricular_count = np.count_nonzero(lesion & near)
        periventricular_ml = _ml(periventricular_count, voxel_ml)
        deep_ml = _ml(np.count_nonzero(lesion) - periventricular_count, voxel_ml)
    else:
        log.warning("periventricular and deep WMH volumes left undefined (no ventricles found)")
    return WmhVolumes(
        wmh_ml=wmh_ml,
        icv_ml=icv_ml,
        wmh_pct_icv=round(100.0 * wmh_ml / icv_ml, VOLUME_DECIMALS),
        periventricular_ml=periventricular_ml,
        deep_ml=deep_ml,
        pv_distance_mm=float(pv_distance_mm),
        lesion_count=count_lesions(lesion),
        ventricle_ml=_ml(np.count_nonzero(ventricles.array), voxel_ml),
    )


def _ml(voxels: int, voxel_ml: float) -> float:
    return round(float(voxels) * voxel_ml, VOLUME_DECIMALS)
