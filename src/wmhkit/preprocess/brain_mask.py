"""Brain extraction on FLAIR (with or without skull) by template registration.

Method (classical, offline, deterministic):

1. Resample the FLAIR onto an axis-aligned RAS+ working grid of
   :data:`WORKING_SPACING_MM` (anti-aliased), which makes thick-slice 2D scans
   isotropic, so that every structuring element below is a ball in mm.
2. Head foreground by Otsu's threshold, largest component, holes filled. A
   foreground smaller than :data:`STRIPPED_MAX_ML` means the scan is already
   skull stripped: the mask is then that foreground (closed, filled), and
   nothing is registered, so no brain can be cut.
3. Otherwise the MNI ICBM152 2009a template that nilearn ships (skull
   stripped) is wrapped in a synthetic head (a dark CSF/skull band and a bright
   scalp band around its brain mask), initialised on the top of the head and
   registered to the scan: similarity then affine transform, Mattes mutual
   information (contrast-agnostic: T1 template to FLAIR), multi-resolution,
   fixed regular sampling (repeatable).
4. The warped brain prior is refined by intensity: tissue brighter than the
   Otsu threshold inside the prior, opened to cut bridges to the scalp, the
   component on the prior's core kept, closed and hole-filled (ventricles and
   sulcal CSF), bounded by the dilated prior.
5. The working-grid mask is smoothed and sampled back at the input's voxel
   centres (any affine, oblique included), so the output is on the exact
   input grid.
"""

from __future__ import annotations

import functools
import logging

import nibabel as nib

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from wmhkit.errors import MaskError
from wmhkit.io.image import Image
from wmhkit.io.mni import MNI_FILES, block_mean, mni_template_dir
from wmhkit.io.sitk import mattes_registration, to_sitk
from wmhkit.itk_threads import itk_threads

log = logging.getLogger(__name__)

#: Isotropic working grid spacing (mm).
WORKING_SPACING_MM = 2.0
#: A head foreground below this volume (mL) is taken as an already skull-stripped scan.
STRIPPED_MAX_ML = 1900.0
#: Head foreground threshold as a fraction of Otsu's threshold of the whole field of view.
FOREGROUND_OTSU_FRACTION = 0.2
#: Plausible brain mask volumes (mL); outside this range the mask is rejected.
MIN_BRAIN_ML = 300.0
MAX_BRAIN_ML = 2500.0
#: nilearn's threshold on its skull-stripped T1 template that defines the template brain.
TEMPLATE_BRAIN_THRESHOLD = 0.2
#: Synthetic head around the template: dark band (CSF + skull) then bright scalp, widths in mm.
SYNTHETIC_SKULL_MM = 6.0
SYNTHETIC_SCALP_MM = 6.0
#: Refinement radii (mm): opening that cuts brain–scalp bridges; closing that takes in sulcal CSF;
#: how far the mask may extend beyond the warped prior; depth of the prior's trusted core.
OPENING_RADIUS_MM = 4.0
CLOSING_RADIUS_MM = 6.0
PRIOR_MARGIN_MM = 6.0
CORE_DEPTH_MM = 10.0
_FIX = "provide a brain mask for this scan in the manifest's brain_mask column"


def compute_brain_mask(flair: Image, *, t1: Image | None = None) -> Image:
    """Compute a binary brain mask for a FLAIR scan, skull present or not.

    Parameters
    ----------
    flair
        FLAIR image, shape ``(X, Y, Z)``, any orientation and spacing (2D
        thick-slice scans included), raw intensities (no bias correction needed).
    t1
        Optional T1 image in the same world space (not necessarily the same
        grid). When given, the template is registered to it (same contrast as
        the template) instead of to the FLAIR; the refinement always uses the FLAIR.

    Returns
    -------
    Image
        uint8 mask (0/1) on exactly the FLAIR grid (same shape and affine).

    Raises
    ------
    MaskError
        When the FLAIR holds no signal, or the mask is empty or of implausible
        volume (outside ``MIN_BRAIN_ML``–``MAX_BRAIN_ML``).

    Examples
    --------
    >>> compute_brain_mask(Image(np.zeros((8, 8, 8), np.float32), np.eye(4)))
    Traceback (most recent call last):
    ...
    wmhkit.errors.MaskError: FLAIR image holds no signal (all voxels equal or non-finite), so no brain mask can be computed. Fix: provide a brain mask for this scan in the manifest's brain_mask column.
    """
    values = np.asarray(flair.array, dtype=np.float32)
    if not np.isfinite(values).all() or values.size == 0 or values.max() <= values.min():
        raise MaskError(
            None,
            "FLAIR image holds no signal (all voxels equal or non-finite), so no brain mask can be computed",
            _FIX,
        )
    grid = _working_grid(flair.affine, flair.shape)
    working = _resample_to_grid(values, flair.affine, flair.spacing_mm, grid)
    head = _head_foreground(working)
    head_ml = head.sum() * WORKING_SPACING_MM**3 / 1000.0
    if head_ml < STRIPPED_MAX_ML:
        log.info("foreground %.0f mL: taking the scan as skull stripped", head_ml)
        brain = _stripped_brain(head)
    else:
        target = working if t1 is None else _resample_to_grid(
            np.asarray(t1.array, np.float32), t1.affine, t1.spacing_mm, grid
        )
        prior = _warped_prior(target, head, grid)
        brain = _refine(working, head, prior)
    mask = _sample_back(brain, grid, flair.affine, flair.shape)
    volume_ml = float(mask.sum()) * flair.voxel_volume_ml
    if not MIN_BRAIN_ML <= volume_ml <= MAX_BRAIN_ML:
        raise MaskError(
            None,
            f"computed brain mask holds {volume_ml:.0f} mL, outside the plausible "
            f"{MIN_BRAIN_ML:.0f}-{MAX_BRAIN_ML:.0f} mL",
            _FIX,
        )
    log.info("brain mask %.0f mL", volume_ml)
    return flair.with_array(mask)


def foreground_brain_mask(foreground: Image) -> Image:
    """Brain mask of an already skull-stripped scan from its foreground (the non-background voxels).

    The foreground is resampled onto the isotropic working grid (so the
    structuring elements are balls in mm on thick-slice scans too), its largest
    component is closed over sulcal CSF and hole-filled (ventricles), and the
    result is sampled back at the input's voxel centres and joined with the
    foreground's own largest component, so no foreground voxel of the brain is lost.

    Parameters
    ----------
    foreground
        Boolean or 0/1 image, shape ``(X, Y, Z)``, any affine.

    Returns
    -------
    Image
        uint8 mask (0/1) on exactly the foreground's grid.
    """
    grid = _working_grid(foreground.affine, foreground.shape)
    fraction = _resample_to_grid(np.asarray(foreground.array, np.float32), foreground.affine,
                                 foreground.spacing_mm, grid)
    brain = _stripped_brain(largest_component(fraction >= 0.5))
    native = largest_component(np.asarray(foreground.array) > 0)
    mask = _sample_back(brain, grid, foreground.affine, foreground.shape) | native
    return foreground.with_array(mask.astype(np.uint8))


def _working_grid(affine: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Axis-aligned RAS+ grid (affine, shape) at WORKING_SPACING_MM covering the image's field of view."""
    corners = np.array([[i, j, k, 1.0] for i in (-0.5, shape[0] - 0.5)
                        for j in (-0.5, shape[1] - 0.5) for k in (-0.5, shape[2] - 0.5)])
    world = (affine @ corners.T)[:3]
    low, high = world.min(axis=1), world.max(axis=1)
    grid_shape = tuple(int(n) for n in np.maximum(np.ceil((high - low) / WORKING_SPACING_MM), 1))
    grid_affine = np.diag([WORKING_SPACING_MM] * 3 + [1.0])
    grid_affine[:3, 3] = low + WORKING_SPACING_MM / 2
    return grid_affine, grid_shape  # type: ignore[return-value]


def _grid_world_to_voxel(grid, affine: np.ndarray) -> np.ndarray:
    """Voxel coordinates in an image (given its affine) of every working-grid voxel centre, shape (3, N)."""
    grid_affine, grid_shape = grid
    index = np.indices(grid_shape, dtype=np.float32).reshape(3, -1)
    mapping = np.linalg.inv(affine) @ grid_affine
    return (mapping[:3, :3] @ index + mapping[:3, 3:4]).astype(np.float32)


def _resample_to_grid(values: np.ndarray, affine: np.ndarray, spacing_mm, grid) -> np.ndarray:
    """Anti-aliased linear resampling of an image onto the working grid (0 outside its field of view)."""
    spacing = np.asarray(spacing_mm, dtype=float)
    sigma_vox = 0.4 * np.sqrt(np.maximum(WORKING_SPACING_MM**2 - spacing**2, 0.0)) / spacing
    smoothed = ndimage.gaussian_filter(values, sigma_vox) if sigma_vox.max() > 0 else values
    coords = _grid_world_to_voxel(grid, affine)
    sampled = ndimage.map_coordinates(smoothed, coords, order=1, mode="constant", cval=0.0)
    return sampled.reshape(grid[1]).astype(np.float32)


def _ball(radius_mm: float) -> np.ndarray:
    """Spherical structuring element of ``radius_mm`` on the isotropic working grid."""
    r = int(np.floor(radius_mm / WORKING_SPACING_MM))
    z, y, x = np.ogrid[-r:r + 1, -r:r + 1, -r:r + 1]
    return (x * x + y * y + z * z) * WORKING_SPACING_MM**2 <= radius_mm**2 + 1e-6


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean mask (the mask itself when it is empty)."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes in 3D, then in every axial and coronal slice (CSF spaces open at one end)."""
    filled = ndimage.binary_fill_holes(mask)
    for axis in (2, 1):
        filled = np.stack(
            [ndimage.binary_fill_holes(s) for s in np.moveaxis(filled, axis, 0)], axis=0
        )
        filled = np.moveaxis(filled, 0, axis)
    return filled


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of a set of intensities (SimpleITK, 256 bins)."""
    threshold = sitk.OtsuThresholdImageFilter()
    threshold.SetInsideValue(0)
    threshold.SetOutsideValue(1)
    threshold.SetNumberOfHistogramBins(256)
    threshold.Execute(sitk.GetImageFromArray(np.asarray(values, np.float32).reshape(1, 1, -1)))
    return float(threshold.GetThreshold())


def _head_foreground(working: np.ndarray) -> np.ndarray:
    """Head (or brain, if stripped) foreground: Otsu threshold, largest component, holes filled."""
    # Otsu on the whole field splits air + dark tissue from bright tissue; a fifth of it keeps
    # the dark scalp, skull and CSF edges in while leaving air (and a stripped scan's background) out.
    foreground = working > FOREGROUND_OTSU_FRACTION * otsu_threshold(working)
    foreground = ndimage.binary_opening(foreground, _ball(2.0))
    return _fill_holes(largest_component(foreground))


def _stripped_brain(foreground: np.ndarray) -> np.ndarray:
    """Brain of an already skull-stripped scan: its foreground, closed over sulcal CSF and filled."""
    closed = ndimage.binary_closing(np.pad(foreground, 4), _ball(CLOSING_RADIUS_MM))[4:-4, 4:-4, 4:-4]
    return _fill_holes(closed | foreground)


@functools.lru_cache(maxsize=1)
def _template() -> tuple[np.ndarray, np.ndarray]:
    """nilearn's MNI ICBM152 2009a T1 (skull stripped) at the working spacing: (array, affine)."""
    template = nib.load(mni_template_dir([MNI_FILES["t1"]]) / MNI_FILES["t1"])
    factor = int(round(WORKING_SPACING_MM / template.header.get_zooms()[0]))
    coarse = block_mean(Image(np.asarray(template.dataobj, dtype=np.float32), template.affine), factor)
    return coarse.array / coarse.array.max(), coarse.affine


def _synthetic_head(template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template brain wrapped in a dark skull band and a bright scalp band: (image, head mask)."""
    brain = template > TEMPLATE_BRAIN_THRESHOLD
    outside_distance = ndimage.distance_transform_edt(~brain, sampling=WORKING_SPACING_MM)
    scalp = (outside_distance > SYNTHETIC_SKULL_MM) & (outside_distance <= SYNTHETIC_SKULL_MM + SYNTHETIC_SCALP_MM)
    image = np.where(brain, template, 0.0).astype(np.float32)
    image[scalp] = np.percentile(template[brain], 95)
    image[brain & (template < 0.25)] = 0.05  # CSF inside the brain mask stays dark, as in FLAIR
    return image, brain | (outside_distance <= SYNTHETIC_SKULL_MM + SYNTHETIC_SCALP_MM)


def _top_centre(mask: np.ndarray, affine: np.ndarray, depth_mm: float) -> np.ndarray:
    """World point at the top of ``mask``: x/y centroid of its upper ``depth_mm``, z of its highest voxel."""
    z_present = np.flatnonzero(mask.any(axis=(0, 1)))
    top = z_present[-1]
    lowest = max(top - int(round(depth_mm / affine[2, 2])), 0)
    x, y, _ = np.nonzero(mask[:, :, lowest:top + 1])
    voxel = np.array([x.mean(), y.mean(), top, 1.0])
    return (affine @ voxel)[:3]


def _warped_prior(target: np.ndarray, head: np.ndarray, grid) -> np.ndarray:
    """Template brain probability registered onto the working grid, shape of the grid, in [0, 1]."""
    template, template_affine = _template()
    synthetic, synthetic_head = _synthetic_head(template)
    grid_affine, _ = grid
    scale = np.percentile(target[head], 99.0)
    fixed = to_sitk(np.clip(target / scale, 0, 1.5), grid_affine, lps=False)
    moving = to_sitk(synthetic, template_affine, lps=False)

    offset = _top_centre(synthetic_head, template_affine, 100.0) - _top_centre(head, grid_affine, 100.0)
    transform = sitk.Similarity3DTransform()
    transform.SetCenter([float(c) for c in _top_centre(head, grid_affine, 100.0) - [0, 0, 80.0]])
    transform.SetTranslation([float(o) for o in offset])
    moving_mask = to_sitk(synthetic_head.astype(np.uint8), template_affine, lps=False)
    transform = _register(fixed, moving, moving_mask, transform, shrink=(4, 2), smooth_mm=(4.0, 2.0))
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(transform.GetMatrix())
    affine.SetTranslation(transform.GetTranslation())
    affine.SetCenter(transform.GetCenter())
    affine = _register(fixed, moving, moving_mask, affine, shrink=(2, 1), smooth_mm=(2.0, 0.0))

    prior = (template > TEMPLATE_BRAIN_THRESHOLD).astype(np.float32)
    warped = sitk.Resample(to_sitk(prior, template_affine, lps=False), fixed, affine, sitk.sitkLinear, 0.0)
    return sitk.GetArrayFromImage(warped).transpose(2, 1, 0)


def _register(fixed: sitk.Image, moving: sitk.Image, moving_mask: sitk.Image, transform, *, shrink, smooth_mm):
    """Mattes-MI registration with regular (repeatable) sampling; returns the optimised transform."""
    method = mattes_registration(random=False, fraction=0.1, seed=1, learning_rate=1.0, iterations=60,
                                 relaxation=0.6, shrink=list(shrink), smoothing_mm=list(smooth_mm))
    method.SetMetricMovingMask(moving_mask)
    method.SetInitialTransform(transform, inPlace=True)
    # Multi-threaded metric and scale estimation add floating-point terms in a varying order,
    # so repeated runs differ; the method's own thread setting does not reach its internal
    # filters, so the global default is set to one thread for the call and restored after.
    with itk_threads(1):
        method.Execute(fixed, moving)
    log.debug("registration stopped: %s (metric %.4f)", method.GetOptimizerStopConditionDescription(),
              method.GetMetricValue())
    return transform


def _refine(working: np.ndarray, head: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Intensity refinement of the warped prior on the working grid (see module docstring, step 4)."""
    prior_mask = prior > 0.5
    outside = ndimage.distance_transform_edt(~prior_mask, sampling=WORKING_SPACING_MM)
    inside = ndimage.distance_transform_edt(prior_mask, sampling=WORKING_SPACING_MM)
    region = (outside <= PRIOR_MARGIN_MM) & head
    core = inside >= CORE_DEPTH_MM
    tissue = (working > otsu_threshold(working[region])) & region
    opened = ndimage.binary_opening(tissue, _ball(OPENING_RADIUS_MM))
    labels, count = ndimage.label(opened)
    overlap = np.bincount(labels[core & opened], minlength=count + 1)
    overlap[0] = 0
    if overlap.max() == 0:
        raise MaskError(None, "no tissue found inside the registered brain template", _FIX)
    brain = labels == np.argmax(overlap)  # the brain, not a scalp piece the prior's core grazes
    brain = ndimage.binary_dilation(brain, _ball(OPENING_RADIUS_MM)) & tissue
    pad = int(np.ceil(CLOSING_RADIUS_MM / WORKING_SPACING_MM)) + 1
    closed = ndimage.binary_closing(np.pad(brain, pad), _ball(CLOSING_RADIUS_MM))[pad:-pad, pad:-pad, pad:-pad]
    return _fill_holes((closed | brain) & region)


def _sample_back(brain: np.ndarray, grid, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Working-grid mask sampled (linear, threshold 0.5) at every input voxel centre; uint8 of ``shape``."""
    grid_affine, _ = grid
    mapping = np.linalg.inv(grid_affine) @ affine
    fraction = ndimage.gaussian_filter(brain.astype(np.float32), 0.5)
    mask = np.empty(shape, dtype=np.uint8)
    i, j = np.indices(shape[:2], dtype=np.float32).reshape(2, -1)
    for k in range(shape[2]):  # slice by slice keeps the coordinate arrays small
        index = np.stack([i, j, np.full_like(i, k)])
        coords = mapping[:3, :3] @ index + mapping[:3, 3:4]
        sampled = ndimage.map_coordinates(fraction, coords, order=1, mode="constant", cval=0.0)
        mask[:, :, k] = (sampled >= 0.5).reshape(shape[:2])
    return mask
