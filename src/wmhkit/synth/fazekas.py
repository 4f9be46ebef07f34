"""Fazekas grades derived from a gold lesion mask (the rule the phantoms' ``fazekas`` column uses).

Rule (a volumetric reading of Fazekas et al., AJR 1987):

* Lesions are the 26-connected components of the gold mask. A component is
  *periventricular* (PV) when any of its voxels lies within 3 mm of the
  ventricles, otherwise *deep*.
* PV grade: 0 without PV lesions; 1 ("caps or pencil-thin lining") when no PV
  lesion reaches further than 5 mm from the ventricles; 2 ("smooth halo") when
  none reaches beyond 10 mm; 3 ("irregular, extending into deep WM") otherwise.
  The reach of a lesion is its 95th-percentile voxel distance to the ventricles.
* Deep grade from the largest deep lesion's equivalent-sphere diameter
  d = (6 V / π)^(1/3): 0 without deep lesions; 1 ("punctate foci") d < 9 mm;
  2 ("beginning confluence") 9 ≤ d < 20 mm; 3 ("large confluent areas") d ≥ 20 mm.
* ``fazekas`` = max(PV grade, deep grade).

Components smaller than 3 voxels are ignored as noise specks. Distances come
from the phantom's template (mm), volumes from the mask's affine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image

#: Lesions touching the ventricles within this distance (mm) are periventricular.
PV_TOUCH_MM = 3.0
#: PV reach limits (mm) of grades 1 and 2.
PV_REACH_MM = (5.0, 10.0)
#: Deep equivalent diameter limits (mm) of grades 1 and 2.
DEEP_DIAMETER_MM = (9.0, 20.0)
_MIN_VOXELS = 3


@dataclass(frozen=True)
class FazekasGrades:
    """Periventricular, deep and overall Fazekas grades (0–3)."""

    periventricular: int
    deep: int

    @property
    def overall(self) -> int:
        """max(periventricular, deep)."""
        return max(self.periventricular, self.deep)


def fazekas_grades(gold: Image, ventricle_distance_mm: np.ndarray) -> FazekasGrades:
    """Grade a gold mask by the module's rule.

    Parameters
    ----------
    gold
        uint8 lesion mask, shape ``(X, Y, Z)``.
    ventricle_distance_mm
        Distance (mm) of each voxel to the ventricles, same shape (only lesion voxels are read).

    Examples
    --------
    A 2-voxel-thick lining beside the ventricles (distances 1–2 mm) is PV grade 1:

    >>> mask = np.zeros((10, 10, 10), np.uint8); mask[2:8, 2:8, 4:6] = 1
    >>> distance = np.where(np.arange(10)[None, None, :] == 4, 1.0, 2.0) * np.ones((10, 10, 10))
    >>> fazekas_grades(Image(mask, np.eye(4)), distance)
    FazekasGrades(periventricular=1, deep=0)
    """
    if np.shape(ventricle_distance_mm) != gold.shape:
        raise ValueError(f"ventricle_distance_mm has shape {np.shape(ventricle_distance_mm)}, "
                         f"the gold mask {gold.shape}; pass distances on the gold grid")
    labels, count = ndimage.label(gold.array > 0, structure=np.ones((3, 3, 3), dtype=bool))
    pv_grade = 0
    largest_deep_ml = 0.0
    for index, component in enumerate(ndimage.find_objects(labels), start=1):
        voxels = labels[component] == index
        if voxels.sum() < _MIN_VOXELS:
            continue
        distances = np.asarray(ventricle_distance_mm)[component][voxels]
        if distances.min() <= PV_TOUCH_MM:
            reach = float(np.percentile(distances, 95))
            pv_grade = max(pv_grade, 1 if reach <= PV_REACH_MM[0] else 2 if reach <= PV_REACH_MM[1] else 3)
        else:
            largest_deep_ml = max(largest_deep_ml, float(voxels.sum()) * gold.voxel_volume_ml)
    deep_grade = 0
    if largest_deep_ml > 0:
        diameter_mm = (6.0 * largest_deep_ml * 1000.0 / np.pi) ** (1.0 / 3.0)
        deep_grade = 1 if diameter_mm < DEEP_DIAMETER_MM[0] else 2 if diameter_mm < DEEP_DIAMETER_MM[1] else 3
    return FazekasGrades(periventricular=pv_grade, deep=deep_grade)
