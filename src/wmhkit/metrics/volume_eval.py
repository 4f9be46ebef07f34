"""Tissue volumes for the confounder analysis of volume models: ventricles, CSF and white matter (mL).

A deliberately simple FLAIR tissue model (WMH volume networks may lean on
atrophy: the confounder analysis asks whether ventricle, CSF and WM volumes
explain the reference volume beyond the prediction):

* **CSF**: brain-mask voxels darker than :data:`DARK_FRACTION` (0.5) of the median
  brain FLAIR intensity (CSF is nulled on FLAIR), the rule of
  :func:`wmhkit.infer.volumes.estimate_ventricles`;
* **ventricles**: the given ventricle mask (e.g. from ``estimate_ventricles``);
* **white matter**: the remaining brain voxels below Otsu's threshold of their
  intensities (SimpleITK, 256 bins) — on FLAIR, WM is darker than GM, and
  hyperintensities fall on the bright side.

Volumes are voxel counts times the voxel volume of the affine. On thick-slice
scans partial volume blurs all three; they are covariates, not a segmentation.
"""

from __future__ import annotations

import numpy as np

from wmhkit.io.image import Image
from wmhkit.preprocess.brain_mask import otsu_threshold

#: Manifest/table columns of the tissue volumes (mL).
TISSUE_COLUMNS: tuple[str, ...] = ("vent_ml", "csf_ml", "wm_ml")
#: Brain voxels darker than this fraction of the median brain FLAIR intensity are CSF.
DARK_FRACTION = 0.5


def tissue_volumes(flair: Image, brain_mask: Image, ventricles: Image) -> dict[str, float]:
    """Ventricle, CSF and white-matter volumes (mL) of one scan (rule in the module docstring).

    Parameters
    ----------
    flair, brain_mask, ventricles
        FLAIR, brain mask and ventricle mask on one grid ``(X, Y, Z)``.

    Returns
    -------
    dict
        ``{"vent_ml", "csf_ml", "wm_ml"}``.

    Raises
    ------
    ValueError
        When the grids differ or the brain mask is empty.

    Examples
    --------
    >>> values = np.array([0.1] * 10 + [1.0] * 40 + [1.3] * 20, np.float32).reshape(7, 10, 1)
    >>> flair = Image(values, np.eye(4) * [10.0, 10.0, 10.0, 1.0])  # 1 mL voxels
    >>> brain = flair.with_array(np.ones((7, 10, 1), np.uint8))
    >>> tissue_volumes(flair, brain, brain.with_array(np.zeros((7, 10, 1), np.uint8)))
    {'vent_ml': 0.0, 'csf_ml': 10.0, 'wm_ml': 40.0}
    """
    if not (flair.same_grid(brain_mask) and flair.same_grid(ventricles)):
        raise ValueError("FLAIR, brain mask and ventricle mask must lie on one grid")
    brain = np.asarray(brain_mask.array) > 0
    if not brain.any():
        raise ValueError("the brain mask is empty; no tissue to measure")
    intensities = np.asarray(flair.array, dtype=np.float32)
    csf = brain & (intensities < DARK_FRACTION * float(np.median(intensities[brain])))
    tissue = brain & ~csf
    wm = np.zeros_like(brain)
    if tissue.any() and np.ptp(intensities[tissue]) > 0:
        wm = tissue & (intensities <= otsu_threshold(intensities[tissue]))
    voxel_ml = flair.voxel_volume_ml
    return {"vent_ml": float((np.asarray(ventricles.array) > 0).sum()) * voxel_ml,
            "csf_ml": float(csf.sum()) * voxel_ml, "wm_ml": float(wm.sum()) * voxel_ml}
