"""Intensity normalisation inside the brain: a linear map fixed by two brain intensities.

``"percentile"`` (default) maps the 0th percentile of brain intensities to 0 and the
98th to 1, linearly, as the M3SL paper maps the 0–98 % range. The map sets the
*scale* from the bulk of the brain so that the brightest 2 % (lesions, vessels,
artefacts) cannot stretch it; it does **not** clip them: a voxel brighter than the
98th percentile keeps its excess (a lesion may come out at 1.4). Clipping there
would saturate the brightest ~2 % of every brain (tens of mL) to one value and
throw away the WMH contrast that segmentation and volume networks learn from.
Values below the lower percentile are clipped to 0 (at the default 0th
percentile no brain voxel is).

``"minmax"`` maps the brain's minimum and maximum to 0 and 1 (so its output lies in
[0, 1] by construction); it suits sites whose FLAIR is fat-suppressed or otherwise
has a compressed bright tail. Voxels outside the brain are set to 0 in both cases.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from wmhkit.errors import MaskError

Normalisation = Literal["percentile", "minmax"]
NORMALISATIONS: tuple[str, ...] = ("percentile", "minmax")
DEFAULT_PERCENTILES: tuple[float, float] = (0.0, 98.0)


def intensity_range(
    intensities: np.ndarray,
    brain_mask: np.ndarray,
    *,
    method: Normalisation = "percentile",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> tuple[float, float]:
    """The ``(low, high)`` intensities that :func:`normalise_intensity` maps to 0 and 1.

    Parameters
    ----------
    intensities, brain_mask
        Arrays of the same shape ``(X, Y, Z)``; the mask is non-zero inside the brain.
    method
        ``"percentile"`` or ``"minmax"``.
    percentiles
        Lower and upper percentiles (0–100) for ``"percentile"``.

    Raises
    ------
    ValueError
        For an unknown method, bad percentiles or mismatched shapes.
    MaskError
        When the mask is empty or the brain has a single intensity (no range).
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {method!r}")
    lower, upper = percentiles
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {percentiles}")
    if intensities.shape != brain_mask.shape:
        raise ValueError(f"image shape {intensities.shape} differs from mask shape {brain_mask.shape}")
    brain = intensities[brain_mask > 0]
    if brain.size == 0:
        raise MaskError(None, "the brain mask is empty", "check the brain mask (or let wmhkit compute one)")
    if method == "minmax":
        low, high = float(brain.min()), float(brain.max())
    else:
        low, high = (float(v) for v in np.percentile(brain.astype(np.float64), [lower, upper]))
    if not high > low:
        raise MaskError(
            None, f"the image is constant ({low:g}) inside the brain mask; nothing to normalise",
            "check that the FLAIR and brain mask belong together",
        )
    return low, high


def normalise_intensity(
    intensities: np.ndarray,
    brain_mask: np.ndarray,
    *,
    method: Normalisation = "percentile",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> np.ndarray:
    """Rescale intensities linearly so that the brain's range maps to [0, 1]; zero outside the brain.

    Parameters
    ----------
    intensities, brain_mask
        Arrays of the same shape ``(X, Y, Z)``.
    method, percentiles
        See :func:`intensity_range`.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(X, Y, Z)``, >= 0; values above 1 are brain voxels
        brighter than the upper percentile (never for ``"minmax"``).

    Examples
    --------
    >>> flair = np.arange(101, dtype=np.float32).reshape(101, 1, 1)
    >>> out = normalise_intensity(flair, np.ones_like(flair, np.uint8))
    >>> float(out[0, 0, 0]), float(out[98, 0, 0]), round(float(out[100, 0, 0]), 4)
    (0.0, 1.0, 1.0204)
    """
    low, high = intensity_range(intensities, brain_mask, method=method, percentiles=percentiles)
    return rescale_to_unit(intensities, brain_mask, low, high)


def rescale_to_unit(
    intensities: np.ndarray, brain_mask: np.ndarray, low: float, high: float, *, clip_high: bool = False
) -> np.ndarray:
    """Map ``low`` → 0 and ``high`` → 1 linearly, clip below 0, and zero voxels outside ``brain_mask``.

    Parameters
    ----------
    intensities, brain_mask
        Arrays of the same shape.
    low, high
        Intensities mapped to 0 and 1.
    clip_high
        Also clip above 1 (a network input that wants [0, 1], e.g. the GP-Unet's
        1–99 % box normalisation); False keeps the bright excess (see the module docstring).

    Returns
    -------
    numpy.ndarray
        float32 array of the shape of ``intensities``.
    """
    if not high > low:
        raise ValueError(f"high ({high}) must exceed low ({low})")
    scaled = (intensities.astype(np.float64) - low) / (high - low)
    out = np.clip(scaled, 0.0, 1.0 if clip_high else None).astype(np.float32)
    out[brain_mask == 0] = 0.0
    return out
