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
from wmhkit.io.mni import mni_template_dir

#: nilearn's skull-stripped MNI ICBM152 2009a T1 and its GM / WM probability maps (uint8, 255 = 1).
TEMPLATE_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
TISSUE_FILES = {"gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}
#: The 1 mm template is averaged over blocks of this many voxels per axis before registration (2 mm: fast,
#: and the registration's finest level works at 2 mm anyway).
TEMPLATE_FACTOR = 2
#: Weight of the registered atlas in a tissue prior; the rest is uniform over CSF, GM and WM.
PRIOR_CONFIDENCE = 0.8


def block_mean(image: Image, factor: int) -> Image:
    """``image`` averaged over blocks of ``factor``³ voxels, with the affine of the coarser grid (same world)."""
    shape = [n // factor for n in image.shape]
    cropped = image.array[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor]
    coarse = cropped.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))
    affine = image.affine @ np.diag([factor, factor, factor, 1.0])
    affine[:3, 3] = image.affine[:3, :3] @ np.full(3, (factor - 1) / 2) + image.affine[:3, 3]
    return Image(coarse.astype(np.float32), affine)


@functools.lru_cache(maxsize=1)
def mni_template() -> tuple[Image, np.ndarray]:
    """(the skull-stripped MNI T1 template at 2 mm, its brain mask: boolean, non-zero template voxels)."""
    stored = nib.load(str(mni_template_dir([TEMPLATE_FILE]) / TEMPLATE_FILE))
    template = block_mean(Image(np.asarray(stored.dataobj, np.float32), stored.affine), TEMPLATE_FACTOR)
    return template, template.array > 0


@functools.lru_cache(maxsize=1)
def _tissue_maps() -> dict[str, Image]:
    folder = mni_template_dir(TISSUE_FILES.values())
    maps = {}
    for tissue, name in TISSUE_FILES.items():
        stored = nib.load(str(folder / name))
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
