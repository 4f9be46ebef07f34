"""Lesion growth: hysteresis from bright seeds into fainter lesion borders, bounded by the cortex's FLAIR level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from wmhkit.bronze.context import ScanContext
from wmhkit.bronze.growth import GrowthParameters, normal_levels, segment_growth
from wmhkit.bronze.tissue import robust_location_scale
from wmhkit.io.image import Image

#: The toy FLAIR's cortex and deep grey matter minus its WM, in prepared units (1.3 − 1.0, scaled by 1 / 1.5).
_TOY_GM_EXCESS = 0.3 / 1.5


def _haloed(toy_brain, *, dark_cortex: bool, halo_sigma: float = 3.2) -> tuple[ScanContext, np.ndarray]:
    """The toy brain with a two-voxel halo at ``halo_sigma`` WM sds around every lesion; the cortex optionally WM-dark."""
    flair = toy_brain.flair.array.copy()
    wm = toy_brain.brain & ~toy_brain.cortex & ~toy_brain.deep_gm & (toy_brain.t1.array > 0.6)
    wm &= ~ndimage.binary_dilation(toy_brain.lesions, iterations=3)
    wm_median, wm_sd = robust_location_scale(flair[wm])
    halo = ndimage.binary_dilation(toy_brain.lesions, structure=np.ones((3, 3, 3)), iterations=2) & ~toy_brain.lesions
    halo &= toy_brain.brain & ~toy_brain.cortex & ~toy_brain.deep_gm
    # Normal-WM noise around a level halo_sigma sds above normal WM (replacing the blurred lesion edge).
    noise = flair[wm][: halo.sum()] - wm_median
    flair[halo] = wm_median + halo_sigma * wm_sd + noise
    if dark_cortex:
        flair[toy_brain.cortex | toy_brain.deep_gm] -= _TOY_GM_EXCESS
    scan = ScanContext(Image(flair, toy_brain.flair.affine), toy_brain.brain, toy_brain.t1)
    return scan, halo


def test_normal_levels_measure_wm_and_cortex(toy_brain):
    levels = normal_levels(ScanContext(toy_brain.flair, toy_brain.brain, toy_brain.t1))
    assert levels.wm_median == pytest.approx(1.0 / 1.5, abs=0.02)
    assert levels.cortex_median == pytest.approx(1.3 / 1.5, abs=0.03)
    assert 0.005 < levels.wm_sd < 0.03


def test_growth_takes_a_faint_lesion_border_when_the_cortex_is_darker(toy_brain):
    scan, halo = _haloed(toy_brain, dark_cortex=True)
    grown = segment_growth(scan)
    seeds_only = segment_growth(scan, replace(GrowthParameters(), kappa_grow=GrowthParameters().kappa_seed))
    assert grown[halo].mean() > 0.6
    assert grown[halo].mean() > seeds_only[halo].mean() + 0.3
    assert not (grown & toy_brain.cortex).any()


def test_growth_stops_below_the_cortex_level(toy_brain):
    # The same halo is fainter than the (bright) cortex: growing into it would also grow into cortex-like tissue.
    scan, halo = _haloed(toy_brain, dark_cortex=False)
    grown = segment_growth(scan)
    seeds_only = segment_growth(scan, replace(GrowthParameters(), kappa_grow=GrowthParameters().kappa_seed))
    assert grown[toy_brain.lesions].mean() > 0.7
    assert grown[halo].mean() < seeds_only[halo].mean() + 0.05
