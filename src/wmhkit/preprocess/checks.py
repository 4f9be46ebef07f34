"""Is this file a FLAIR that a WMH model can use? Clear answers for odd input.

Refused before any work (:class:`~wmhkit.errors.InputError` naming the file), by
:func:`check_flair`:

* an image too small to hold a brain (its field of view below
  :data:`~wmhkit.preprocess.brain_mask.MIN_BRAIN_ML`) when the brain mask must be
  computed: no brain extraction can find one there (with a brain mask given the
  image is prepared as it is, as RELIABILITY.md asks of tiny images);
* a single-slice (or 2D) image when the brain mask must be computed: brain
  extraction needs a volume (with a brain mask given, a single slice is prepared,
  N4 skipped: :func:`~wmhkit.preprocess.bias.n4_bias_correct`).

Flagged, by :func:`scan_flags` (a warning naming the file, and the flag names in
``predict``'s ``volumes.csv`` and sidecars), because the scan still runs but its
volumes should not be trusted:

* ``coarse_voxels``: in-plane voxels over :data:`MAX_IN_PLANE_MM` or slices over
  :data:`MAX_SLICE_MM`, which no WMH model (nor rater) resolves lesions in;
* ``not_flair_contrast``: the contrast of a T1, not a FLAIR (:func:`depth_ratio`),
  judged on scans whose slices are at most :data:`CONTRAST_MAX_SLICE_MM` thick.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from scipy import ndimage

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.preprocess.brain_mask import MIN_BRAIN_ML

log = logging.getLogger(__name__)

#: Largest in-plane voxel side (mm) at which WMH are still resolved.
MAX_IN_PLANE_MM = 3.0
#: Largest slice thickness (mm) at which WMH are still resolved (clinical 2D FLAIR: 3–6 mm).
MAX_SLICE_MM = 10.0
#: :func:`depth_ratio` above which the contrast is a T1's. Measured with
#: ``benchmarks/bench_contrast_check.py`` (bias-corrected scans): FLAIRs 0.76–1.18,
#: T1s 1.26–1.65; the margin is thin, so this is a flag, never a refusal.
T1_DEPTH_RATIO = 1.22
#: Thickest voxel side (mm) at which the contrast is judged: thicker slices blend the cortex
#: with sulcal CSF, which darkens it in any contrast (FLAIR phantoms of the demo's 2D
#: scanner profiles reached the T1s' ratios), so thick-slice scans get no verdict.
CONTRAST_MAX_SLICE_MM = 3.0
#: Fewest voxels in each intensity band for :func:`depth_ratio` to give a verdict.
MIN_BAND_VOXELS = 200
#: Brain intensity percentiles bounding the middle band and the bright band of :func:`depth_ratio`.
BAND_PERCENTILES = (25.0, 55.0, 85.0)


def check_flair(image: Image, path: str | os.PathLike[str], *, brain_mask_given: bool) -> None:
    """Refuse a FLAIR that cannot be prepared (see the module docstring).

    Parameters
    ----------
    image
        The native FLAIR, shape ``(X, Y, Z)``.
    path
        Its file, named in the error.
    brain_mask_given
        Whether a brain mask comes with it (else one must be computed, and the
        checks apply).

    Raises
    ------
    InputError
        For an image too small to hold a brain, or a single slice.
    """
    if brain_mask_given:
        return
    shape = "×".join(str(n) for n in image.shape)
    spacing = "×".join(f"{s:g}" for s in image.spacing_mm)
    field_of_view_ml = float(np.prod(image.shape)) * image.voxel_volume_ml
    if field_of_view_ml < MIN_BRAIN_ML:
        raise InputError(
            path, f"image too small to hold a brain: {shape} voxels of {spacing} mm span {field_of_view_ml:.3g} mL, "
            f"less than the smallest plausible brain ({MIN_BRAIN_ML:g} mL)",
            "pass the whole-brain FLAIR volume",
        )
    if min(image.shape) < 2:
        raise InputError(
            path, f"image is a single slice or 2D ({shape} voxels): a brain mask cannot be computed on it",
            "pass the whole FLAIR volume (all slices), or give a brain mask in the manifest's brain_mask column",
        )


def voxel_flags(spacing_mm: tuple[float, float, float]) -> list[str]:
    """``["coarse_voxels"]`` when the in-plane side or the slice thickness is over its limit.

    The thickest axis is the slice direction; the larger of the other two is in-plane.

    Examples
    --------
    >>> voxel_flags((0.9, 0.9, 5.0)), voxel_flags((10.0, 10.0, 10.0)), voxel_flags((1.0, 1.0, 12.0))
    ([], ['coarse_voxels'], ['coarse_voxels'])
    """
    ordered = sorted(spacing_mm)
    return ["coarse_voxels"] if ordered[1] > MAX_IN_PLANE_MM or ordered[2] > MAX_SLICE_MM else []


def depth_ratio(flair: Image, brain: np.ndarray) -> float | None:
    """How much deeper in the brain the bright tissue lies than the middle-intensity tissue.

    In a FLAIR grey matter is brighter than white matter, so the bright band of brain
    intensities (percentiles 55–85, :data:`BAND_PERCENTILES`) lies in the cortex, nearer
    the brain surface than the middle band (25–55, white matter); in a T1 white matter
    is the brighter, so the bright band lies deeper. CSF (dark in both) falls below
    the middle band, lesions above the bright one.

    Parameters
    ----------
    flair
        The image (any linear intensity scale), shape ``(X, Y, Z)``.
    brain
        Boolean brain mask on its grid.

    Returns
    -------
    float or None
        Median depth (mm from the brain surface) of the bright band over that of the
        middle band: below 1 for a FLAIR, above :data:`T1_DEPTH_RATIO` for a T1; None
        when a band holds fewer than :data:`MIN_BAND_VOXELS` voxels (a flat image).
    """
    brain = np.asarray(brain, bool)
    depth = ndimage.distance_transform_edt(brain, sampling=flair.spacing_mm)[brain]
    values = flair.array[brain]
    if values.size == 0:
        return None
    low, middle, high = np.percentile(values, BAND_PERCENTILES)
    middle_band = depth[(values > low) & (values <= middle)]
    bright_band = depth[(values > middle) & (values <= high)]
    if min(middle_band.size, bright_band.size) < MIN_BAND_VOXELS:
        return None
    return float(np.median(bright_band) / max(float(np.median(middle_band)), 1e-6))


def scan_flags(path: str | os.PathLike[str], native_spacing_mm: tuple[float, float, float], flair: Image,
               brain: Image) -> list[str]:
    """The flags of a scan (module docstring), each logged as a warning naming ``path``.

    Parameters
    ----------
    path
        The native FLAIR file.
    native_spacing_mm
        Its voxel sides (mm).
    flair, brain
        The prepared FLAIR and brain mask (same grid).
    """
    flags = voxel_flags(native_spacing_mm)
    if flags:
        log.warning("%s: voxels of %s mm are coarser than WMH models resolve (in-plane up to %g mm, slices up to "
                    "%g mm); its volumes are flagged coarse_voxels", path, "×".join(f"{s:.3g}" for s in native_spacing_mm),
                    MAX_IN_PLANE_MM, MAX_SLICE_MM)
    ratio = depth_ratio(flair, brain.array.astype(bool)) if max(native_spacing_mm) <= CONTRAST_MAX_SLICE_MM else None
    if ratio is not None and ratio > T1_DEPTH_RATIO:
        log.warning("%s: the contrast is a T1's, not a FLAIR's (the brightest tissue lies deep, in white matter: depth "
                    "ratio %.2f > %g); check that this file is the FLAIR; its volumes are flagged not_flair_contrast",
                    path, ratio, T1_DEPTH_RATIO)
        flags.append("not_flair_contrast")
    return flags
