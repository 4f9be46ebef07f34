"""Brain extraction behind one interface: named extractors, skull-stripped input, plausibility and fallback.

A brain extractor is any callable ``extractor(flair, *, t1) -> mask`` (FLAIR and
optional T1 as :class:`~wmhkit.io.image.Image`, the mask uint8 on the FLAIR
grid), registered under a name in :data:`BRAIN_EXTRACTORS`:

``hdbet`` (default)
    HD-BET "fast" mode on CPU (:mod:`wmhkit.preprocess.hdbet`), ~30–40 s per scan
    on 2 CPU cores; robust on whole-head clinical scans of any contrast and slice
    thickness.
``template``
    Registration of the MNI template wrapped in a synthetic head
    (:func:`wmhkit.preprocess.brain_mask.compute_brain_mask`), ~5–15 s per scan.

Another tool (SynthStrip, a site's own pipeline) is added with
:func:`register_brain_extractor`. :func:`extract_brain` runs them:

1. An input that is already skull stripped — its background, the region
   connected to the faces of the volume holding one exact value (0, or what a
   NaN, negative or offset background became), covers at least
   :data:`STRIPPED_FACE_FRACTION` of the faces, and the rest holds at most
   ``MAX_BRAIN_ML`` (a whole head is larger) — is masked by that rest
   (closed over sulci, holes filled, largest component), method ``"nonzero"``;
   no extractor runs, so none can cut brain (HD-BET cut 3–17 % of expert lesion
   voxels on already-stripped thick-slice scans).
2. Otherwise the chosen extractor runs, and its mask must be plausible: a volume
   within ``MIN_BRAIN_ML``–``MAX_BRAIN_ML`` and no face of the volume covered over
   more than :data:`MAX_FACE_COVERAGE` (a mask spilling over the field of view).
3. If it fails, the other method runs (``hdbet`` ↔ ``template``; ``template`` for a
   registered extractor) with a warning, and the method is recorded as e.g.
   ``"template (fallback from hdbet)"``. Only when both fail is a
   :class:`~wmhkit.errors.MaskError` raised, naming the file and the fix.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.errors import MaskError
from wmhkit.io.image import Image
from wmhkit.preprocess.brain_mask import (
    MAX_BRAIN_ML, MIN_BRAIN_ML, compute_brain_mask, foreground_brain_mask,
)

log = logging.getLogger(__name__)

#: An extractor: ``(flair, *, t1) -> uint8 mask on the FLAIR grid``; raises MaskError when it finds no brain.
BrainExtractor = Callable[..., Image]
#: Method recorded when the input was already skull stripped.
NONZERO = "nonzero"
DEFAULT_BRAIN_EXTRACTOR = "hdbet"
#: Fraction of the voxels on the six faces of the volume that must hold the background value
#: for a scan to count as skull stripped (a noisy whole-head background holds no single value).
STRIPPED_FACE_FRACTION = 0.5
#: A brain mask covering more than this fraction of any face of the volume is implausible
#: (a 2D scan's first or last slice through the brain covers at most about half of its field of view).
MAX_FACE_COVERAGE = 0.7
_FIX = ("give a brain mask for this scan in the manifest's brain_mask column, "
        "or choose another method with --brain-extractor")


def _hdbet(flair: Image, *, t1: Image | None = None) -> Image:
    from wmhkit.preprocess.hdbet import hdbet_brain_mask  # deferred: imports torch and the HD-BET package

    return hdbet_brain_mask(flair, t1=t1)


#: Registered extractors by name.
BRAIN_EXTRACTORS: dict[str, BrainExtractor] = {"hdbet": _hdbet, "template": compute_brain_mask}


def register_brain_extractor(name: str, extractor: BrainExtractor) -> None:
    """Make ``extractor`` available as ``brain_extractor=name`` (``--brain-extractor name``).

    Register it at import time of a module every worker imports, so Dask
    workers know it too. Replacing a registered name is allowed.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum() or name == NONZERO:
        raise ValueError(f"brain extractor name {name!r} must be letters, digits, '-' or '_' and not {NONZERO!r}")
    BRAIN_EXTRACTORS[name] = extractor


def check_brain_extractor(name: str) -> None:
    """Raise ValueError unless ``name`` is a registered brain extractor."""
    if name not in BRAIN_EXTRACTORS:
        raise ValueError(f"brain extractor must be one of {sorted(BRAIN_EXTRACTORS)}, got {name!r}")


@dataclass(frozen=True)
class BrainExtraction:
    """A brain mask and how it was made.

    Attributes
    ----------
    mask
        uint8 mask (0/1) on the FLAIR grid.
    method
        ``"nonzero"``, an extractor's name, or ``"<fallback> (fallback from <method>)"``.
    volume_ml
        Brain volume (mL).
    """

    mask: Image
    method: str
    volume_ml: float


def extract_brain(
    flair: Image,
    *,
    t1: Image | None = None,
    method: str = DEFAULT_BRAIN_EXTRACTOR,
    source: str | os.PathLike[str] | None = None,
) -> BrainExtraction:
    """Brain mask of a FLAIR: its non-background region if already skull stripped, else ``method``
    with a fallback (see the module docstring).

    Parameters
    ----------
    flair
        FLAIR image, shape ``(X, Y, Z)``, best reoriented to RAS+ (HD-BET was
        trained in that orientation), NaN already replaced by 0.
    t1
        Optional T1 on the same world space (used by ``template``).
    method
        Registered extractor name.
    source
        The FLAIR's file, named in warnings and errors.

    Returns
    -------
    BrainExtraction

    Raises
    ------
    MaskError
        When the FLAIR holds no signal, or every method gives an implausible mask.
    ValueError
        For an unknown ``method``.
    """
    check_brain_extractor(method)
    values = np.asarray(flair.array)
    if values.size == 0 or not np.isfinite(values).all() or values.max() <= values.min():
        raise MaskError(source, "the FLAIR holds no signal (all voxels equal or non-finite), so it has no brain", _FIX)
    foreground = stripped_foreground(flair)
    if foreground is not None:
        mask = foreground_brain_mask(foreground)
        problem = implausibility(mask)
        if problem is None:
            volume_ml = _volume_ml(mask)
            log.info("%s: skull stripped input, brain = its non-background region (%.0f mL)", source or "FLAIR",
                     volume_ml)
            return BrainExtraction(mask, NONZERO, volume_ml)
        log.warning("%s: the non-background region of this skull-stripped looking scan is no brain (%s); "
                    "running %s", source or "FLAIR", problem, method)
    failures = []
    for name in (method, fallback_method(method)):
        try:
            mask = BRAIN_EXTRACTORS[name](flair, t1=t1)
        except MaskError as exc:
            problem = exc.reason
        else:
            problem = implausibility(mask)
            if problem is None:
                used = name if name == method else f"{name} (fallback from {method})"
                volume_ml = _volume_ml(mask)
                log.info("%s: brain mask by %s, %.0f mL", source or "FLAIR", used, volume_ml)
                return BrainExtraction(mask.with_array(mask.array.astype(np.uint8)), used, volume_ml)
        failures.append(f"{name}: {problem}")
        if name == method:
            log.warning("%s: %s brain extraction failed (%s); falling back to %s", source or "FLAIR", name, problem,
                        fallback_method(method))
    raise MaskError(source, f"brain extraction failed with every method ({'; '.join(failures)})", _FIX)


def fallback_method(method: str) -> str:
    """The extractor tried when ``method``'s mask fails: ``hdbet`` for ``template``, else ``template``."""
    return "hdbet" if method == "template" else "template"


def stripped_foreground(flair: Image) -> Image | None:
    """The non-background region of an already skull-stripped scan, or None for a scan with a head.

    The background value is the most common value on the six faces of the volume;
    the background is every voxel holding exactly that value and connected to a
    face. The scan counts as skull stripped when that value fills at least
    :data:`STRIPPED_FACE_FRACTION` of the face voxels and the rest holds at most
    ``MAX_BRAIN_ML`` (a head with a zero-filled background is larger, unless the field
    of view holds only a thin slab of it).

    Returns
    -------
    Image or None
        Boolean foreground on the FLAIR grid.
    """
    values = np.asarray(flair.array)
    faces = np.concatenate([np.moveaxis(values, axis, 0)[side].ravel() for axis in range(3) for side in (0, -1)])
    candidates, counts = np.unique(faces, return_counts=True)
    background_value = candidates[np.argmax(counts)]
    if counts.max() < STRIPPED_FACE_FRACTION * faces.size:
        return None
    labels, _ = ndimage.label(values == background_value)
    face_labels = np.unique(np.concatenate(
        [np.moveaxis(labels, axis, 0)[side].ravel() for axis in range(3) for side in (0, -1)]
    ))
    foreground = ~np.isin(labels, face_labels[face_labels > 0])
    volume_ml = float(foreground.sum()) * flair.voxel_volume_ml
    if volume_ml > MAX_BRAIN_ML or not foreground.any():
        return None
    return flair.with_array(foreground)


def implausibility(mask: Image) -> str | None:
    """Why ``mask`` cannot be a brain (volume outside ``MIN_BRAIN_ML``–``MAX_BRAIN_ML``, or covering more
    than :data:`MAX_FACE_COVERAGE` of a face of the volume), or None when it is plausible."""
    brain = np.asarray(mask.array) > 0
    volume_ml = _volume_ml(mask)
    if not MIN_BRAIN_ML <= volume_ml <= MAX_BRAIN_ML:
        return f"mask holds {volume_ml:.0f} mL, outside the plausible {MIN_BRAIN_ML:.0f}-{MAX_BRAIN_ML:.0f} mL"
    coverage = max(float(np.moveaxis(brain, axis, 0)[side].mean()) for axis in range(3) for side in (0, -1))
    if coverage > MAX_FACE_COVERAGE:
        return f"mask covers {coverage:.0%} of a face of the volume (a brain inside the field of view covers less)"
    return None


def _volume_ml(mask: Image) -> float:
    return float(np.count_nonzero(mask.array)) * mask.voxel_volume_ml
