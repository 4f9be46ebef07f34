"""Real lesion shapes transplanted into a real FLAIR: more gold scans with real anatomy and scanner texture.

A host FLAIR with its expert mask (e.g. a Lesjak 2018 scan in MNI space) receives the lesions of
a library mask (another patient's consensus mask in MNI space, mapped through world coordinates,
optionally mirrored left-right). Transplanted lesions brighten the host's tissue towards a
contrast that varies smoothly across the brain (some lesions faint, some bright) while keeping
the host's own noise and texture: the target intensity is ``contrast × tissue level × (host /
its local mean)``. Lesion voxels that land on CSF (ventricles, sulci: darker than
:data:`TISSUE_FLOOR` × the tissue level) are neither brightened nor labelled, so the mask never
claims a lesion the image cannot show. The new mask is the host's lesions ∪ the transplanted
lesion voxels (edge-smoothed fraction ≥ 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.synth.fields import smooth_random_field
from wmhkit.synth.lesions import library_on_grid

#: Mean transplanted lesion intensity over the host's median non-lesion brain intensity, drawn per
#: transplant (the Lesjak 2018 consensus lesions measure 1.32–1.38 × that median).
CONTRAST_RANGE = (1.2, 1.65)
#: RMS of the smooth variation of the contrast across the brain, and its length scale (mm).
CONTRAST_RMS, CONTRAST_LATTICE_MM = 0.12, 12.0
#: The contrast never leaves this range.
CONTRAST_LIMITS = (1.1, 2.0)
#: Host voxels darker than this fraction of the tissue level (CSF) receive no lesion.
TISSUE_FLOOR = 0.75
#: Gaussian sigma (mm) of the lesion edge (partial volume) and of the local mean that defines texture.
EDGE_SIGMA_MM, TEXTURE_SIGMA_MM = 0.6, 2.0


def transplant_lesions(
    flair: Image, gold: Image, library_file: Path, rng: np.random.Generator, *, mirror: bool = False
) -> tuple[Image, Image, float]:
    """Transplant the lesions of ``library_file`` into a skull-stripped ``flair``.

    Parameters
    ----------
    flair
        Skull-stripped FLAIR (0 outside the brain), any grid.
    gold
        Its lesion mask on the same grid (label 1 = lesion; other labels are dropped).
    library_file
        A lesion mask NIfTI in the same world space as ``flair`` (e.g. both MNI).
    rng
        Source of the contrast drawn for this transplant.
    mirror
        Mirror the library mask left-right (world x → −x) first.

    Returns
    -------
    flair, gold, transplanted_ml
        float32 FLAIR with the new lesions, uint8 mask (host ∪ transplanted), and the volume
        (mL) of transplanted lesion voxels outside the host's own lesions.
    """
    if not flair.same_grid(gold):
        raise ValueError("flair and gold must share a grid")
    values = np.asarray(flair.array, dtype=np.float32)
    host = np.asarray(gold.array) == 1
    brain = values > 0
    level = float(np.median(values[brain & ~host]))
    spacing = np.asarray(flair.spacing_mm)
    fraction = library_on_grid(Path(library_file), flair.shape, tuple(flair.affine.ravel().tolist()), mirror)
    fraction = ndimage.gaussian_filter(fraction, EDGE_SIGMA_MM / spacing)
    fraction *= brain & (values > TISSUE_FLOOR * level)
    axes = [np.arange(n) * s for n, s in zip(flair.shape, spacing)]
    contrast = np.clip(rng.uniform(*CONTRAST_RANGE) + smooth_random_field(axes, CONTRAST_LATTICE_MM, CONTRAST_RMS, rng),
                       *CONTRAST_LIMITS)
    local_mean = ndimage.gaussian_filter(values, TEXTURE_SIGMA_MM / spacing)
    texture = np.clip(values / np.maximum(local_mean, 1e-6 * level), 0.8, 1.25)
    target = contrast * np.float32(level) * texture
    brightened = values + fraction * np.maximum(target - values, 0.0)
    transplanted = fraction >= 0.5
    mask = (host | transplanted).astype(np.uint8)
    added_ml = float((transplanted & ~host).sum()) * flair.voxel_volume_ml
    return flair.with_array(brightened.astype(np.float32)), gold.with_array(mask), round(added_ml, 4)
