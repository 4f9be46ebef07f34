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

There is no check of the contrast (a T1 given as FLAIR) yet: a measure of where the
bright tissue lies (cortex in FLAIR, deep white matter in T1) flagged 15 of the 23
NiChart FLAIRs of older adults, whose confluent periventricular WMH are bright deep
tissue, so it was not kept.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.preprocess.brain_mask import MIN_BRAIN_ML

log = logging.getLogger(__name__)

#: Largest in-plane voxel side (mm) at which WMH are still resolved.
MAX_IN_PLANE_MM = 3.0
#: Largest slice thickness (mm) at which WMH are still resolved (clinical 2D FLAIR: 3–6 mm).
MAX_SLICE_MM = 10.0
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


def scan_flags(path: str | os.PathLike[str], native_spacing_mm: tuple[float, float, float]) -> list[str]:
    """The flags of a scan (module docstring), each logged as a warning naming ``path``.

    Parameters
    ----------
    path
        The native FLAIR file.
    native_spacing_mm
        Its voxel sides (mm).
    """
    flags = voxel_flags(native_spacing_mm)
    if flags:
        log.warning("%s: voxels of %s mm are coarser than WMH models resolve (in-plane up to %g mm, slices up to "
                    "%g mm); its volumes are flagged coarse_voxels", path, "×".join(f"{s:.3g}" for s in native_spacing_mm),
                    MAX_IN_PLANE_MM, MAX_SLICE_MM)
    return flags
