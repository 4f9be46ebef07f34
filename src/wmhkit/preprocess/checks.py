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
  :data:`MAX_SLICE_MM`, which no WMH model (nor rater) resolves lesions in.
* ``t1_like_contrast``: the cortex darker than the deep white matter, as in a T1
  (:func:`cortex_to_deep_ratio` below :data:`T1_LIKE_RATIO`). 137 FLAIRs of the
  development data gave 0.85–1.36, NiChart T1s 0.72–0.76, Lesjak MS T1s 0.86–1.00
  (missed; BENCHMARKS.md, "Odd input"). It flags, never refuses.
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
#: :func:`cortex_to_deep_ratio` below this flags a scan ``t1_like_contrast``.
T1_LIKE_RATIO = 0.8
#: Depth (mm from the brain mask's edge) of the cortical band, and the least depth of deep tissue.
CORTEX_DEPTH_MM, DEEP_DEPTH_MM = 4.0, 20.0
#: Brain voxels below this percentile (mostly CSF, dark in FLAIR and T1 alike) are left out of both.
CSF_PERCENTILE = 25.0
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


def cortex_to_deep_ratio(flair: Image, brain_mask: Image) -> float:
    """75th percentile of the cortical band over the median of the deep tissue of ``flair`` (dimensionless).

    ``brain_mask`` is on ``flair``'s grid. Both regions leave out the brain's darkest
    :data:`CSF_PERCENTILE` %; the band lies within :data:`CORTEX_DEPTH_MM` of the mask's
    edge, the deep tissue at least :data:`DEEP_DEPTH_MM` inside (white and deep grey
    matter, a few percent of WMH even in heavy loads). NaN when the brain cannot hold both.
    """
    brain = brain_mask.array > 0
    values = flair.array
    depth = ndimage.distance_transform_edt(brain, sampling=flair.spacing_mm)
    tissue = brain & (values > np.percentile(values[brain], CSF_PERCENTILE)) if brain.any() else brain
    band, deep = tissue & (depth <= CORTEX_DEPTH_MM), tissue & (depth >= DEEP_DEPTH_MM)
    if not band.any() or not deep.any():
        return float("nan")
    return float(np.percentile(values[band], 75) / np.median(values[deep]))


def scan_flags(path: str | os.PathLike[str], native_spacing_mm: tuple[float, float, float],
               prepared_flair: Image | None = None, brain_mask: Image | None = None) -> list[str]:
    """The flags of a scan (module docstring), each logged as a warning naming ``path``.

    Parameters
    ----------
    path
        The native FLAIR file.
    native_spacing_mm
        Its voxel sides (mm).
    prepared_flair, brain_mask
        The prepared FLAIR and its brain mask, for the contrast check (skipped without them).
    """
    flags = voxel_flags(native_spacing_mm)
    if flags:
        log.warning("%s: voxels of %s mm are coarser than WMH models resolve (in-plane up to %g mm, slices up to "
                    "%g mm); its volumes are flagged coarse_voxels", path, "×".join(f"{s:.3g}" for s in native_spacing_mm),
                    MAX_IN_PLANE_MM, MAX_SLICE_MM)
    if prepared_flair is not None and brain_mask is not None:
        ratio = cortex_to_deep_ratio(prepared_flair, brain_mask)
        if ratio < T1_LIKE_RATIO:
            log.warning("%s: the cortex is darker than the deep white matter (ratio %.2f, FLAIRs give ≥ %g): is it a "
                        "T1 rather than a FLAIR? Its volumes are flagged t1_like_contrast", path, ratio, T1_LIKE_RATIO)
            flags.append("t1_like_contrast")
    return flags
