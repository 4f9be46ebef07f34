"""The bias-corrected FLAIR on the prepared grid *without* the normalisation's upper clip.

``wmhkit prepare`` maps the 98th intensity percentile inside the brain to 1 and
clips above it. That suits networks, but every WMH brighter than the 98th
percentile (and the core of the cortex) then reads exactly 1.0, and a classical
method can no longer tell a lesion from grey matter. The bronze methods
therefore recover the unclipped values:

* the native FLAIR is mapped onto the prepared grid exactly (reorientation and
  crop, no interpolation: :func:`~wmhkit.preprocess.geometry.to_prepared`);
* where the prepared value is strictly between the clip limits, native /
  (low + prepared · (high − low)) is the N4 bias field itself; being smooth, its
  logarithm is spread into the clipped voxels by Gaussian normalised
  convolution (σ = ``field_sigma_mm``);
* clipped voxels get native / field, rescaled with the same ``low``/``high``.

Unclipped voxels keep their prepared value exactly, so only the saturated ones
change. When the native FLAIR is unavailable the prepared FLAIR is used as is.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.preprocess.geometry import NativeGeometry, to_prepared

log = logging.getLogger(__name__)

#: Width (mm) of the Gaussian that spreads the bias field into clipped voxels.
FIELD_SIGMA_MM = 8.0
#: Prepared values within this margin of 0 or 1 are treated as clipped.
CLIP_MARGIN = 1e-3


def unclipped_flair(
    prepared: Image, native: Image, geometry: NativeGeometry, flair_range: tuple[float, float],
    brain_mask: np.ndarray, *, field_sigma_mm: float = FIELD_SIGMA_MM,
) -> Image:
    """Prepared FLAIR with its clipped voxels restored above 1 (see the module docstring).

    Parameters
    ----------
    prepared
        Prepared FLAIR (``[0, 1]``, on the prepared grid).
    native
        The scan's native FLAIR (on the record's native grid).
    geometry
        The scan's native-geometry record.
    flair_range
        ``(low, high)`` native intensities that prepare mapped to 0 and 1.
    brain_mask
        Brain mask on the prepared grid.

    Returns
    -------
    Image
        float32, prepared grid; ≥ 0 inside the brain, 0 outside.
    """
    low, high = (float(v) for v in flair_range)
    raw = to_prepared(native, geometry).array.astype(np.float64)
    value = prepared.array.astype(np.float64)
    brain = np.asarray(brain_mask).astype(bool)
    reliable = brain & (value > CLIP_MARGIN) & (value < 1.0 - CLIP_MARGIN) & (raw > 0)
    clipped = brain & (value >= 1.0 - CLIP_MARGIN)
    if not reliable.any() or not clipped.any():
        return prepared
    corrected = low + value * (high - low)
    log_field = np.zeros(value.shape)
    log_field[reliable] = np.log(raw[reliable] / np.maximum(corrected[reliable], 1e-12))
    sigma = [field_sigma_mm / s for s in prepared.spacing_mm]
    weight = ndimage.gaussian_filter(reliable.astype(np.float64), sigma, mode="constant")
    spread = ndimage.gaussian_filter(log_field, sigma, mode="constant")
    field = np.exp(np.divide(spread, weight, out=np.zeros_like(spread), where=weight > 1e-6))
    restored = value.copy()
    restored[clipped] = np.maximum((raw[clipped] / field[clipped] - low) / (high - low), 1.0)
    restored[~brain] = 0.0
    return prepared.with_array(restored.astype(np.float32))
