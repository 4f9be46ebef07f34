"""Lesion growth from high-belief seeds (in the spirit of LST's lesion growth algorithm).

Algorithm
---------
1. Lesion belief ``b``: the FLAIR's posterior-weighted deviation from the WM and
   GM classes of the tissue model, Σ_k P(k | T1, FLAIR) (FLAIR − μ_k) / σ_k
   (:func:`~wmhkit.bronze.tissue.class_z_score`); CSF-like voxels (CSF posterior
   > 0.5) have no belief. A lesion is bright *for the tissue it sits in*, so the
   bright cortex (b ≈ 0 relative to GM) is not a lesion, while a faint lesion in
   WM is.
2. Seeds: voxels of the WM region (see :mod:`wmhkit.bronze.outlier`; closed by
   ``closing_mm`` = 3 mm for the same reason) with
   ``b > kappa_seed``, in 26-connected clusters of at least ``min_seed_mm3`` whose
   surrounding shell is at least ``min_wm_shell`` WM or ventricle and at most
   ``max_csf_shell`` sulcal CSF (:func:`~wmhkit.bronze.outlier.location_filter`).
   ``min_wm_shell`` defaults to 0 (off): on real MS scans the tissue model's WM
   posterior around seeds is often low (partial volume, T1-dark surroundings) and
   the WM test removed every seed (Dice 0 → 0.25 on Lesjak patient 26); the
   sulcal-CSF test still rejects seeds on the cortex.
3. Growth: seeds grow one voxel layer at a time (26-neighbourhood) into voxels
   of the WM region dilated by ``growth_margin_mm`` with ``b > kappa_grow``, for
   at most ``max_growth_mm`` (LST grows until convergence; a bound keeps a leak
   into a bright artefact local).
4. Clusters smaller than ``min_lesion_mm3`` are dropped.

Uses the (T1, FLAIR) tissue model when a T1 exists, FLAIR alone otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.outlier import location_filter
from wmhkit.bronze.tissue import class_z_score, distance_to_mm, remove_small_clusters


@dataclass(frozen=True)
class GrowthParameters:
    """Parameters of :func:`segment_growth` (see the module docstring)."""

    kappa_seed: float = 3.0
    kappa_grow: float = 2.0
    min_seed_mm3: float = 10.0
    max_growth_mm: float = 8.0
    cortex_margin_mm: float = 2.0
    closing_mm: float = 3.0
    min_lesion_mm3: float = 15.0
    growth_margin_mm: float = 2.0
    shell_mm: float = 2.0
    min_wm_shell: float = 0.0
    max_csf_shell: float = 0.1


def lesion_belief(scan: ScanContext) -> np.ndarray:
    """Belief map ``b`` of step 1 (float32 ``(X, Y, Z)``, 0 outside the brain and in CSF)."""
    belief = class_z_score(scan.flair.array, scan.tissue, "flair", ("gm", "wm"))
    belief[(scan.tissue.posteriors["csf"] > 0.5) | ~scan.brain_mask] = 0.0
    return belief


def segment_growth(scan: ScanContext, parameters: GrowthParameters = GrowthParameters()) -> np.ndarray:
    """WMH mask of one prepared scan by seeded lesion growth.

    Returns
    -------
    numpy.ndarray
        Boolean ``(X, Y, Z)`` on the prepared grid.
    """
    spacing = scan.spacing_mm
    belief = lesion_belief(scan)
    region = scan.wm_region(parameters.cortex_margin_mm, parameters.closing_mm)
    seeds = remove_small_clusters(region & (belief > parameters.kappa_seed), parameters.min_seed_mm3, spacing)
    seeds = location_filter(seeds, scan, parameters.shell_mm, parameters.min_wm_shell, parameters.max_csf_shell)
    if not seeds.any():
        return seeds
    near_region = distance_to_mm(region, spacing) <= parameters.growth_margin_mm
    allowed = (belief > parameters.kappa_grow) & near_region & (scan.depth_mm > parameters.cortex_margin_mm)
    steps = max(1, math.ceil(parameters.max_growth_mm / min(spacing)))
    grown = ndimage.binary_dilation(seeds, structure=np.ones((3, 3, 3)), iterations=steps, mask=allowed | seeds)
    return remove_small_clusters(grown, parameters.min_lesion_mm3, spacing)
