"""The MNI ICBM152 2009a atlas on a scan: the template's affine registration and its tissue priors.

nilearn ships the symmetric ICBM152 2009a T1 template with its grey- and white-matter
probability maps (Fonov et al. 2011), so nothing is downloaded. :func:`mni_transform`
registers the skull-stripped template to a scan (similarity then affine, Mattes mutual
information inside both brain masks: :func:`wmhkit.bronze.register.affine_transform`);
maps in MNI space (the ``lpa`` lesion prior, the tissue priors) are then resampled onto
the scan through that one transform.

:func:`tissue_priors` gives the FLAIR-only tissue model (:mod:`wmhkit.bronze.tissue`) its
spatial priors, as SPM's and FSL FAST's segmentations use tissue probability maps: in
FLAIR, grey and white matter differ by a few percent and the bright tail of WMH is wide, so
a mixture of intensities alone may split the tissue peak into a narrow and a broad
component instead of into GM and WM (on 8 of the 23 NiChart FLAIRs its "WM" was the bright
tail: 65–193 mL, median above the cortex). The registration is affine, not deformable, so
the maps are blurred relative to the scan's anatomy; each is mixed with a uniform prior
(:data:`PRIOR_CONFIDENCE`) so that intensities still decide where the atlas is unsure.
"""

from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from wmhkit.bronze.register import affine_transform, resample_onto
from wmhkit.io.image import Image
from wmhkit.io.mni import MNI_FILES, block_mean, mni_template_dir

#: The 1 mm template is averaged over blocks of this many voxels per axis before registration (2 mm: fast,
#: and the registration's finest level works at 2 mm anyway).
TEMPLATE_FACTOR = 2
#: Weight of the registered atlas in a tissue prior; the rest is uniform over CSF, GM and WM.
PRIOR_CONFIDENCE = 0.8


@functools.lru_cache(maxsize=1)
def mni_template() -> tuple[Image, np.ndarray]:
    """(the skull-stripped MNI T1 template at 2 mm, its brain mask: boolean, non-zero template voxels)."""
    stored = nib.load(str(mni_template_dir([MNI_FILES["t1"]]) / MNI_FILES["t1"]))
    template = block_mean(Image(np.asarray(stored.dataobj, np.float32), stored.affine), TEMPLATE_FACTOR)
    return template, template.array > 0


@functools.lru_cache(maxsize=1)
def _tissue_maps() -> dict[str, Image]:
    tissues = ("gm", "wm")
    folder = mni_template_dir(MNI_FILES[t] for t in tissues)
    maps = {}
    for tissue in tissues:
        stored = nib.load(str(folder / MNI_FILES[tissue]))
        maps[tissue] = Image(np.asarray(stored.dataobj, np.float32) / 255.0, stored.affine)
    return maps


def mni_transform(flair: Image, brain_mask: np.ndarray) -> sitk.Transform:
    """The affine transform mapping the scan's world points into MNI space (template registered to ``flair``)."""
    template, template_brain = mni_template()
    return affine_transform(flair, template, brain_mask, template_brain)


def tissue_priors(flair: Image, brain_mask: np.ndarray, transform: sitk.Transform) -> dict[str, np.ndarray]:
    """Prior probabilities of CSF, GM and WM per voxel of ``flair``'s grid.

    Parameters
    ----------
    flair
        The scan (only its grid is used).
    brain_mask
        Boolean ``(X, Y, Z)``.
    transform
        :func:`mni_transform` of the scan.

    Returns
    -------
    dict
        ``csf``, ``gm``, ``wm`` → float32 ``(X, Y, Z)``: the atlas's GM and WM maps resampled
        onto the scan, CSF = the rest (1 − GM − WM, so outside the atlas's brain every voxel is
        CSF-like), each mixed as ``PRIOR_CONFIDENCE × atlas + (1 − PRIOR_CONFIDENCE) / 3``; they sum
        to 1 inside the brain and are 0 outside.
    """
    resampled = {tissue: np.clip(resample_onto(image, flair, transform).array, 0.0, 1.0)
                 for tissue, image in _tissue_maps().items()}
    tissue_sum = resampled["gm"] + resampled["wm"]
    scale = np.maximum(tissue_sum, 1.0)  # interpolation may push GM + WM a little above 1
    atlas = {"csf": 1.0 - tissue_sum / scale, "gm": resampled["gm"] / scale, "wm": resampled["wm"] / scale}
    brain = np.asarray(brain_mask, bool)
    return {tissue: np.where(brain, PRIOR_CONFIDENCE * probability + (1.0 - PRIOR_CONFIDENCE) / 3.0,
                             0.0).astype(np.float32)
            for tissue, probability in atlas.items()}
