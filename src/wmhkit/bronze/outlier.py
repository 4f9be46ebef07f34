"""FLAIR hyperintensity outliers inside white matter (in the spirit of UBO Detector).

Algorithm
---------
1. WM region: the tissue model's WM plus ventricles, closed and hole-filled,
   minus the outer ``cortex_margin_mm`` of the brain
   (:func:`~wmhkit.bronze.tissue.white_matter_region`), so lesions inside WM are
   searched and the cortex is not. The closing radius ``closing_mm`` is 3 mm:
   the tissue model calls most WMH voxels GM (T1-dark, FLAIR-bright), and with
   2 mm a lesion touching a sulcus or the GM stayed outside the region (only 56 %
   and 66 % of the gold WMH of Lesjak patients 26 and 07 were inside it; 3 mm:
   98–100 %; mean Dice on the three annotated scans 0.32 → 0.44, on seven 2 mm
   phantoms with > 2 mL WMH 0.39 → 0.46).
2. Normal-appearing WM (NAWM): voxels of the region with WM posterior ≥
   ``nawm_probability`` (0.5: the most likely class; the robust statistics
   tolerate the GM/lesion voxels this lets in); its FLAIR median ``m`` and robust sd ``s`` (MAD·1.4826)
   describe normal WM.
3. Candidates: region voxels with FLAIR > ``m + k_sigma · s``.
4. Periventricular rim: candidates within ``rim_mm`` of the ventricles are set
   aside (the thin bright ependymal rim is normal); 26-connected clusters of the
   rest smaller than ``min_lesion_mm3`` are dropped; then rim candidates within
   ``rim_mm`` of a kept cluster are added back, so a periventricular lesion keeps
   its base while an isolated rim does not survive.
5. Location: a cluster is kept only when at least ``min_wm_shell`` of its
   surrounding shell (``shell_mm`` thick) is WM or ventricle
   (:func:`~wmhkit.bronze.tissue.keep_surrounded_clusters`). In FLAIR the cortex
   and deep GM are brighter than WM and exceed the threshold too, but they are
   surrounded by GM and CSF, lesions by WM. WM here is the T1 tissue model's when
   the scan has a T1 (:attr:`~wmhkit.bronze.context.ScanContext.lesion_surroundings`):
   the FLAIR-driven model confuses WM with lesion penumbra and deep GM. Clusters whose shell is more than
   ``max_csf_shell`` sulcal CSF (CSF posterior > 0.5 outside the ventricles) are
   cortex lining a sulcus and are dropped too.

Units: intensities are the prepared FLAIR's scale (98th brain percentile = 1, brighter voxels above 1); distances and volumes in mm / mm³.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.tissue import (
    distance_to_mm,
    keep_surrounded_clusters,
    remove_small_clusters,
    robust_location_scale,
)


@dataclass(frozen=True)
class OutlierParameters:
    """Parameters of :func:`segment_outlier` (see the module docstring)."""

    k_sigma: float = 3.0
    nawm_probability: float = 0.5
    cortex_margin_mm: float = 3.0
    closing_mm: float = 3.0
    rim_mm: float = 2.0
    min_lesion_mm3: float = 10.0
    shell_mm: float = 2.0
    min_wm_shell: float = 0.5
    max_csf_shell: float = 0.1


def segment_outlier(scan: ScanContext, parameters: OutlierParameters = OutlierParameters()) -> np.ndarray:
    """WMH mask (boolean ``(X, Y, Z)`` on the prepared grid) of one prepared scan by FLAIR outlier detection in WM."""
    spacing = scan.spacing_mm
    flair = scan.flair.array
    region = scan.wm_region(parameters.cortex_margin_mm, parameters.closing_mm)
    nawm = region & (scan.tissue.posteriors["wm"] >= parameters.nawm_probability)
    median, sd = robust_location_scale(flair[nawm])
    candidates = region & (flair > median + parameters.k_sigma * sd)
    lesions = keep_with_rim(candidates, scan.ventricles, spacing, parameters.rim_mm, parameters.min_lesion_mm3)
    return location_filter(lesions, scan, parameters.shell_mm, parameters.min_wm_shell, parameters.max_csf_shell)


def location_filter(
    clusters: np.ndarray, scan: ScanContext, shell_mm: float, min_wm_shell: float, max_csf_shell: float,
) -> np.ndarray:
    """Keep clusters surrounded by WM/ventricle (≥ ``min_wm_shell``) and not lining sulci (≤ ``max_csf_shell``)."""
    spacing = scan.spacing_mm
    kept = keep_surrounded_clusters(clusters, scan.lesion_surroundings, spacing, shell_mm=shell_mm, min_fraction=min_wm_shell)
    sulcal_csf = (scan.tissue.posteriors["csf"] > 0.5) & ~scan.ventricles
    return keep_surrounded_clusters(kept, ~sulcal_csf, spacing, shell_mm=shell_mm, min_fraction=1.0 - max_csf_shell)


def keep_with_rim(
    candidates: np.ndarray, ventricle_mask: np.ndarray, spacing_mm: tuple[float, float, float],
    rim_mm: float, min_lesion_mm3: float,
) -> np.ndarray:
    """Size-filter ``candidates`` away from the periventricular rim, then re-attach rim voxels next to kept lesions."""
    near_ventricle = distance_to_mm(ventricle_mask, spacing_mm) <= rim_mm
    kept = remove_small_clusters(candidates & ~near_ventricle, min_lesion_mm3, spacing_mm)
    if not kept.any():
        return kept
    return kept | (candidates & near_ventricle & (distance_to_mm(kept, spacing_mm) <= rim_mm))
