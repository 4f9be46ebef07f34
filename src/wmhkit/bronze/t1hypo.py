"""T1 hypointensities inside white matter (in the spirit of FreeSurfer's WM-hypointensity label 77).

FreeSurfer labels as "WM-hypointensities" voxels inside its (filled) white-matter
segmentation whose T1 intensity is too low for WM. This method does the same
on the T1 alone, never looking at the FLAIR, so its errors are its own:

1. T1 tissue model (CSF < GM < WM in T1); WM = WM posterior > 0.5 plus the deep
   CSF (ventricles), closed by ``closing_mm`` and hole-filled: lesions enclosed by
   WM, or lying between WM and a ventricle, are inside this "filled" WM.
2. Normal WM: T1 median ``m`` and robust sd ``s`` (MAD·1.4826) of voxels with WM
   posterior ≥ ``nawm_probability`` (0.5: WM is the most likely class; on thick
   clinical slices the posterior rarely reaches 0.9, and the robust statistics
   tolerate the partial-volume voxels this admits).
3. Hypointense: filled-WM voxels with ``T1 < m − k_sigma · s`` that are not CSF
   (T1 above the midpoint of the CSF and GM class means: closer to GM), farther than ``boundary_mm`` from the
   filled WM's outer boundary (the WM/GM partial-volume band is dark in T1
   everywhere) and farther than ``ventricle_mm`` from the ventricles (the same
   band around the ventricles), in 26-connected clusters of ≥ ``min_lesion_mm3``.
4. Location, as FreeSurfer's labels do: only above the lowest ventricle slice
   (no brainstem or cerebellum), and only clusters whose surrounding shell
   (``shell_mm``) is at least ``min_wm_shell`` WM or ventricle — the basal ganglia
   and thalamus are dark in T1 and enclosed by the filled WM, but surrounded by
   grey matter.

Requires a T1 on the FLAIR grid (the stage registers it when its native grid
differs from the FLAIR's, see :mod:`wmhkit.bronze.register`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.tissue import (
    close_mm,
    distance_to_mm,
    keep_surrounded_clusters,
    remove_small_clusters,
    robust_location_scale,
    supratentorial,
    ventricles,
)
from wmhkit.errors import InputError


@dataclass(frozen=True)
class T1HypoParameters:
    """Parameters of :func:`segment_t1hypo` (see the module docstring)."""

    k_sigma: float = 3.0
    nawm_probability: float = 0.5
    closing_mm: float = 2.0
    boundary_mm: float = 2.0
    ventricle_mm: float = 1.5
    min_lesion_mm3: float = 10.0
    shell_mm: float = 2.0
    min_wm_shell: float = 0.6


def segment_t1hypo(scan: ScanContext, parameters: T1HypoParameters = T1HypoParameters()) -> np.ndarray:
    """WMH mask (boolean ``(X, Y, Z)`` on the prepared grid) of one prepared scan from T1 hypointensities in WM.

    Raises
    ------
    InputError
        When the scan has no T1.
    """
    if scan.t1 is None:
        raise InputError(None, "method t1hypo needs a T1 and this scan has none",
                         "add the T1 to the manifest's t1 column, or run the FLAIR-only methods (outlier, growth, tophat)")
    spacing = scan.spacing_mm
    t1 = scan.t1.array
    tissue = scan.t1_tissue
    deep_csf = ventricles(tissue, scan.brain_mask, spacing)
    wm = tissue.posteriors["wm"] > 0.5
    filled = ndimage.binary_fill_holes(close_mm(wm | deep_csf, parameters.closing_mm, spacing)) & scan.brain_mask
    median, sd = robust_location_scale(t1[wm & (tissue.posteriors["wm"] >= parameters.nawm_probability)])
    not_csf = t1 > 0.5 * (tissue.mean("csf", "t1") + tissue.mean("gm", "t1"))
    inner = distance_to_mm(~filled, spacing) > parameters.boundary_mm
    away_from_ventricles = distance_to_mm(deep_csf, spacing) > parameters.ventricle_mm
    hypo = filled & inner & away_from_ventricles & not_csf & (t1 < median - parameters.k_sigma * sd)
    hypo &= supratentorial(deep_csf, hypo.shape)
    hypo = remove_small_clusters(hypo, parameters.min_lesion_mm3, spacing)
    return keep_surrounded_clusters(hypo, wm | deep_csf, spacing, shell_mm=parameters.shell_mm,
                                    min_fraction=parameters.min_wm_shell)
