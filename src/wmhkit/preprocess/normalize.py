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

Both maps are linear, so they undo any scale and offset the scan was stored with.
The step before them that is not, N4 bias correction (a multiplicative field fitted
on log intensities, voxels <= 0 left out), needs air at 0: :func:`remove_intensity_offset`
first takes a storage offset out (``scl_inter``, a z-scored or shifted image) and fills
a constant negative padding (e.g. -1000 outside a skull-stripped brain) with air, so
that the same scan stored as float32, scaled int16, uint8, uint16, with an offset or
with a NaN or negative background reaches N4 with the same intensities up to one scale
factor (and quantisation).
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


#: Percentile of the (non-padding) intensities taken as the air level.
AIR_PERCENTILE = 1.0
#: An air level above this fraction of the 99th percentile is a storage offset.
OFFSET_FRACTION = 0.2
#: A negative minimum held by at least this fraction of the voxels may be padding ...
PADDING_FRACTION = 0.01
#: ... when the next intensity lies more than this fraction of the rest's range above it.
PADDING_GAP_FRACTION = 0.1


def remove_intensity_offset(intensities: np.ndarray) -> np.ndarray:
    """Shift a stored MR image so that air is 0 (see the module docstring).

    MR magnitude intensities are >= 0 with air near 0. The air level is the
    :data:`AIR_PERCENTILE` th percentile of the voxels; when it is negative (a z-scored
    or shifted image) or above :data:`OFFSET_FRACTION` of the 99th percentile (an
    offset such as ``scl_inter``), it is subtracted and values below it are clipped
    to 0. A negative minimum held by many voxels and far below every other intensity
    is padding, not signal: it is set to 0 (air) and the rest kept as it is.
    An image without offset or padding is returned unchanged (the same array).

    Parameters
    ----------
    intensities
        Finite intensities of a scan (NaN already replaced at loading), shape ``(X, Y, Z)``.

    Returns
    -------
    numpy.ndarray
        ``intensities`` itself, or a float32 array of its shape with air at 0.

    Examples
    --------
    >>> scan = np.concatenate([np.zeros(50), np.linspace(100.0, 600.0, 50)]).reshape(100, 1, 1)
    >>> remove_intensity_offset(scan) is scan, float(remove_intensity_offset(scan + 1e4).max())
    (True, 600.0)
    >>> padded = np.where(scan > 0, scan, -1000.0)
    >>> float(remove_intensity_offset(padded).min()), float(remove_intensity_offset(padded).max())
    (0.0, 600.0)
    """
    values = np.asarray(intensities)
    lowest = float(values.min())
    padding = values == lowest
    if lowest < 0 and padding.mean() >= PADDING_FRACTION and not padding.all():
        rest = values[~padding]
        spread = float(np.percentile(rest, 99)) - float(rest.min())
        if float(rest.min()) - lowest > PADDING_GAP_FRACTION * spread:
            return np.clip(np.where(padding, 0.0, values), 0.0, None).astype(np.float32)
    air, high = (float(v) for v in np.percentile(values.astype(np.float64), [AIR_PERCENTILE, 99.0]))
    if 0.0 <= air <= OFFSET_FRACTION * high:
        return intensities
    return np.clip(values.astype(np.float64) - air, 0.0, None).astype(np.float32)
