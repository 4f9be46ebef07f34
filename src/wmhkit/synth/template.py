"""The MNI ICBM152 2009a anatomy that every phantom is warped from.

nilearn ships the symmetric ICBM152 2009a T1 and its GM/WM probability maps
(197×233×189 at 1 mm, skull-stripped, values 0–255). They are read offline from
the installed package (never downloaded) and the maps the phantoms need are
derived once per process and resolution (:func:`load_template` is cached):

* ``csf``: brain minus GM minus WM (the brain is where the T1 is non-zero).
* ``ventricles``: CSF (fraction > 0.5) in connected parts of at least 1 mL that
  do not reach the outside of the brain, i.e. the lateral and third ventricles
  (17.8 mL on the 1 mm template).
* ``ventricle_distance_mm``: Euclidean distance to the ventricles.
* ``rim``: the thin periventricular band (decays with 1.5 mm scale) that is
  slightly bright on FLAIR in everyone.
* ``sulcal``: GM adjacent to sulcal CSF, which atrophy turns into CSF.
* ``deep_wm``: WM more than about 4 mm from any other tissue (deep lesion sites).
* ``outside_distance_mm``: distance outside the smoothed brain hull (0 inside),
  from which the head (CSF shell, skull, scalp) is built.

The grid is cropped to the brain with a 16 mm margin (padded below the
cerebellum) so the head fits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from wmhkit.io.mni import MNI_FILES, mni_template_dir

#: Margin (mm) kept around the brain when cropping, room for the head.
HEAD_MARGIN_MM = 16.0
#: Ventricles: enclosed CSF parts of at least this volume (mL).
_VENTRICLE_MIN_ML = 1.0
#: Decay length (mm) of the bright periventricular rim.
_RIM_DECAY_MM = 1.5


@dataclass(frozen=True, eq=False)
class Template:
    """Anatomical maps on one template grid; arrays are float32 ``(X, Y, Z)`` unless noted.

    Attributes
    ----------
    affine
        4×4 voxel-to-MNI (RAS+, mm) matrix of the cropped grid.
    gm, wm, csf
        Tissue fractions in 0..1; their sum is the brain fraction (1 inside the brain).
    ventricles, deep_wm
        bool masks.
    ventricle_distance_mm, outside_distance_mm
        Distances in mm (see the module docstring).
    rim, sulcal
        Weights in 0..1.
    ventricle_centre_mm, brain_centre_mm
        MNI coordinates (mm) of the ventricles' and the brain's centroids.
    files
        The nilearn files read (for provenance).
    """

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray
    deep_wm: np.ndarray
    ventricle_distance_mm: np.ndarray
    outside_distance_mm: np.ndarray
    rim: np.ndarray
    sulcal: np.ndarray
    ventricle_centre_mm: np.ndarray
    brain_centre_mm: np.ndarray
    files: tuple[Path, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape ``(X, Y, Z)``."""
        return tuple(int(s) for s in self.gm.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel size in mm (from the affine)."""
        return float(np.linalg.norm(self.affine[:3, 0]))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0


@functools.lru_cache(maxsize=4)
def load_template(resolution_mm: float = 1.0) -> Template:
    """Load the ICBM152 maps, resample to ``resolution_mm`` and derive the phantom maps.

    Parameters
    ----------
    resolution_mm
        Isotropic voxel size of the returned grid (1.0 = native). Coarser grids
        (e.g. 3.0) make fast previews and tests.

    Returns
    -------
    Template
        Cached per process and resolution; treat its arrays as read-only.
    """
    if not (0.5 <= resolution_mm <= 8.0):
        raise ValueError(f"resolution_mm must lie in 0.5..8 mm, got {resolution_mm}")
    folder = mni_template_dir(MNI_FILES.values())
    files = tuple(folder / MNI_FILES[key] for key in ("t1", "gm", "wm"))
    t1_nifti = nib.load(files[0])
    t1, gm, wm = (np.asarray(nib.load(f).dataobj, dtype=np.float32) / 255.0 for f in files)
    brain = ndimage.binary_fill_holes(t1 > 0)
    t1_affine = t1_nifti.affine
    brain_f, gm, wm, affine = _crop_and_resample(brain.astype(np.float32), gm, wm, t1_affine, resolution_mm)
    brain = brain_f >= 0.5
    gm = np.where(brain, gm, 0.0).astype(np.float32)
    wm = np.where(brain, wm, 0.0).astype(np.float32)
    tissue = gm + wm
    over = tissue > 1.0
    gm[over] /= tissue[over]
    wm[over] /= tissue[over]
    csf = np.where(brain, 1.0 - gm - wm, 0.0).astype(np.float32)
    spacing = float(np.linalg.norm(affine[:3, 0]))
    ventricles = _ventricles(brain, csf, spacing)
    ventricle_distance = distance_outside_mm(ventricles, spacing)
    rim = (wm * np.exp(-ventricle_distance / _RIM_DECAY_MM) * (ventricle_distance > 0)).astype(np.float32)
    outer_csf = csf * ~ventricles
    exposure = ndimage.gaussian_filter(outer_csf, 1.5 / spacing)
    sulcal = (gm * np.clip(exposure * 4.0, 0.0, 1.0)).astype(np.float32)
    deep_wm = ndimage.gaussian_filter(wm, 2.0 / spacing) > 0.9
    hull = (ndimage.gaussian_filter(brain.astype(np.float32), 3.0 / spacing) > 0.5) | brain
    outside = distance_outside_mm(hull, spacing)
    maps = dict(gm=gm, wm=wm, csf=csf, ventricles=ventricles, deep_wm=deep_wm,
                ventricle_distance_mm=ventricle_distance, outside_distance_mm=outside, rim=rim, sulcal=sulcal)
    for array in maps.values():
        array.setflags(write=False)  # shared by every subject through the cache
    return Template(
        affine=affine, **maps, ventricle_centre_mm=_centroid_mm(ventricles, affine),
        brain_centre_mm=_centroid_mm(brain, affine), files=files,
    )


def _crop_and_resample(
    brain: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray, resolution_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crop to the brain box plus margin (zero-padding where the margin leaves the
    array, e.g. below the cerebellum) and resample to ``resolution_mm`` with
    trilinear interpolation of the fractions."""
    spacing = float(np.linalg.norm(affine[:3, 0]))
    margin = int(round(HEAD_MARGIN_MM / spacing))
    nonzero = np.argwhere(brain > 0)
    low = nonzero.min(axis=0) - margin
    high = nonzero.max(axis=0) + margin + 1
    shape_out = np.ceil((high - low) * spacing / resolution_mm).astype(int)
    step = resolution_mm / spacing
    # Output voxel i samples input voxel low + (i + 0.5) * step - 0.5 (grid-aligned box averaging centre).
    origin_index = low + 0.5 * step - 0.5
    if step == 1.0:
        resampled = [_crop_padded(volume, low, high) for volume in (brain, gm, wm)]
    else:
        zoom_matrix = np.diag([step, step, step])
        resampled = [
            ndimage.affine_transform(volume, zoom_matrix, offset=origin_index, output_shape=tuple(shape_out),
                                     order=1, mode="constant", cval=0.0, prefilter=False).astype(np.float32)
            for volume in (_presmooth(brain, step), _presmooth(gm, step), _presmooth(wm, step))
        ]
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * step
    new_affine[:3, 3] = affine[:3, :3] @ origin_index + affine[:3, 3]
    return resampled[0], resampled[1], resampled[2], new_affine


def _crop_padded(volume: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``volume[low:high]`` with zeros where the box leaves the array."""
    out = np.zeros(tuple(high - low), dtype=np.float32)
    src_low = np.maximum(low, 0)
    src_high = np.minimum(high, volume.shape)
    src = tuple(slice(a, b) for a, b in zip(src_low, src_high))
    dst = tuple(slice(a - l, b - l) for a, b, l in zip(src_low, src_high, low))
    out[dst] = volume[src]
    return out


def _presmooth(volume: np.ndarray, step: float) -> np.ndarray:
    """Anti-alias before coarsening (Gaussian of sigma ≈ step/2.5 voxels); untouched at 1 mm."""
    if step <= 1.0:
        return volume
    return ndimage.gaussian_filter(volume, step / 2.5)


def distance_outside_mm(mask: np.ndarray, spacing: float) -> np.ndarray:
    """Distance (mm, float32) from each voxel to the nearest voxel of ``mask``; 0 inside.

    SimpleITK's Maurer transform is used (multi-threaded, ~5× faster here than scipy's EDT).
    """
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing((spacing, spacing, spacing))
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    return np.clip(sitk.GetArrayFromImage(distance), 0.0, None).astype(np.float32)


def _ventricles(brain: np.ndarray, csf: np.ndarray, spacing: float) -> np.ndarray:
    """CSF parts that the outside (background plus connected sulcal CSF) does not reach."""
    candidate = (csf > 0.5) | ~brain
    labels, count = ndimage.label(candidate)
    outside = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                        labels[:, :, [0, -1]].ravel()]))
    sizes_ml = ndimage.sum_labels(candidate, labels, index=np.arange(1, count + 1)) * spacing**3 / 1000.0
    keep = np.setdiff1d(np.flatnonzero(sizes_ml >= _VENTRICLE_MIN_ML) + 1, outside)
    if keep.size == 0:
        raise ValueError(f"no enclosed ventricles found in the template at {spacing} mm; use a finer resolution_mm")
    return np.isin(labels, keep)


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    centre_index = np.array(ndimage.center_of_mass(mask))
    return affine[:3, :3] @ centre_index + affine[:3, 3]
