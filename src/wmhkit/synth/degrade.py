"""Turn a 1 mm research FLAIR (and its lesion mask) into a clinical acquisition of the same subject.

A real scan in world space is re-acquired on a clinical grid: thick 2D slices
with a Gaussian slice profile, another in-plane spacing, stored LPS, LAS or
oblique, in the data types hospitals write, optionally with a synthetic head
around an already skull-stripped brain. Used by ``benchmarks/bench_clinical.py``
to build the clinical validation set from the annotated Lesjak scans, and meant
for on-the-fly augmentation of real gold scans.

Point spread model. Every output voxel is a Gaussian-weighted average of the
source around its centre: an isotropic in-plane anti-aliasing Gaussian (when
the target in-plane spacing is coarser than the source's) and, along the slice
axis, a Gaussian slice profile, with full widths at half maximum chosen so that
together with the source's own resolution (FWHM ≈ its voxel size) the slice
profile has FWHM = slice thickness and the in-plane PSF FWHM = in-plane spacing
(widths of Gaussians add in quadrature). Because the isotropic part is applied
on the source grid and the slice part along the target's slice axis, an oblique
grid gets the same profile as a straight one. Samples are trilinear in world
coordinates, so the world content of the image is unchanged by the storage
orientation (``clinical_grid``). Lesion masks go through the same resampler as
a fraction and are kept where the fraction is ≥ 0.5 (:func:`degrade_mask`),
as :mod:`wmhkit.synth.acquire` does for phantoms.

The synthetic head reuses the phantom head model (:mod:`wmhkit.synth.head`: CSF
shell, skull tables and marrow, scalp fat and muscle around the smoothed brain
hull) with the default FLAIR contrast (:data:`wmhkit.synth.contrast.FLAIR`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.synth.anatomy import rotation_matrix
from wmhkit.synth.contrast import FLAIR, TissueContrast
from wmhkit.synth.head import HeadParameters, head_fractions
from wmhkit.synth.storage import save_codes, stored_values
from wmhkit.synth.template import distance_outside_mm

#: Full width at half maximum of a Gaussian in units of its sigma.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: The slice profile is truncated at this many sigma.
PROFILE_TRUNCATE_SIGMA = 3.0
#: Axis directions on disk before obliquity (NIfTI world is RAS+).
ORIENTATION_SIGNS: dict[str, tuple[float, float, float]] = {
    "RAS": (1.0, 1.0, 1.0), "LAS": (-1.0, 1.0, 1.0), "LPS": (-1.0, -1.0, 1.0),
}
#: Spacing of the sub-slices summed across the slice profile, in source voxels: at half a voxel the
#: trilinear samples integrate even a one-voxel-thin sheet exactly.
SUBSLICE_STEP = 0.5
#: Smoothing (mm) of the brain before taking its hull for the head layers (as the phantom template).
HULL_SMOOTHING_MM = 3.0


@dataclass(frozen=True)
class ClinicalAcquisition:
    """How a clinical scanner samples and stores a subject.

    Attributes
    ----------
    spacing_mm
        Voxel size along the array axes (in-plane x, in-plane y, slice); the third
        axis is the slice axis (axial slices).
    orientation
        Axis directions on disk before obliquity: ``"RAS"``, ``"LAS"`` or ``"LPS"``.
    oblique_deg
        Rotation of the slice stack about x, y, z (degrees; 0 = straight).
    margin_mm
        Field of view beyond the source's non-zero extent on each side (mm).
    """

    spacing_mm: tuple[float, float, float]
    orientation: str = "LPS"
    oblique_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    margin_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.orientation not in ORIENTATION_SIGNS:
            raise ValueError(f"orientation must be one of {sorted(ORIENTATION_SIGNS)}, got {self.orientation!r}")
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing_mm must be three positive sizes, got {self.spacing_mm}")


def clinical_grid(source: Image, acquisition: ClinicalAcquisition) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the clinical grid covering ``source``'s non-zero voxels.

    Parameters
    ----------
    source
        The image to re-acquire (its non-zero voxels define the field of view).
    acquisition
        Spacing, orientation, obliquity and margin.

    Returns
    -------
    shape, affine
        Grid shape and 4×4 voxel-to-world (RAS+ mm) matrix: columns
        ``rotation(oblique_deg) @ diag(signs × spacing)``, centred on the middle of
        the non-zero extent along the grid's own axes.
    """
    spacing = np.asarray(acquisition.spacing_mm, dtype=np.float64)
    direction = rotation_matrix(acquisition.oblique_deg) @ np.diag(np.asarray(ORIENTATION_SIGNS[acquisition.orientation]))
    nonzero = np.argwhere(source.array != 0)
    if nonzero.size == 0:
        raise ValueError("the source image is empty: nothing to acquire")
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    low, high = nonzero.min(axis=0), nonzero.max(axis=0)
    box = low + corners * (high - low)  # voxel corners of the non-zero box
    world = source.affine[:3, :3] @ box.T + source.affine[:3, 3:4]
    along = direction.T @ world  # coordinates along the grid's unit axes
    extent = along.max(axis=1) - along.min(axis=1) + 2.0 * acquisition.margin_mm
    shape = tuple(int(max(1, math.ceil(e / s))) for e, s in zip(extent, spacing))
    centre = direction @ ((along.max(axis=1) + along.min(axis=1)) / 2.0)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(spacing)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return shape, affine  # type: ignore[return-value]


def slice_profile_resample(source: Image, shape: tuple[int, int, int], affine: np.ndarray) -> Image:
    """Re-acquire ``source`` on the grid ``(shape, affine)`` with a Gaussian slice profile.

    Parameters
    ----------
    source
        Image on any grid (world RAS+ mm); outside it the signal is 0.
    shape, affine
        Target grid; its third axis is the slice axis, its column norms the
        spacing (in-plane, in-plane, slice thickness).

    Returns
    -------
    Image
        float32 image on the target grid: each voxel the source convolved with the
        point spread of the module docstring and sampled at the voxel centre
        (trilinear).

    Examples
    --------
    >>> source = Image(np.ones((40, 40, 40), np.float32), np.eye(4))
    >>> thick = slice_profile_resample(source, (20, 20, 4), np.diag([1.0, 1.0, 5.0, 1.0]))
    >>> thick.shape, round(float(thick.array[10, 10, 2]), 4)
    ((20, 20, 4), 1.0)
    """
    affine = np.asarray(affine, dtype=np.float64)
    source_mm = float(np.prod(source.spacing_mm) ** (1.0 / 3.0))
    target = np.linalg.norm(affine[:3, :3], axis=0)
    in_plane_fwhm = _added_fwhm(float(max(target[0], target[1])), source_mm)
    slice_fwhm = _added_fwhm(float(target[2]), math.hypot(source_mm, in_plane_fwhm))
    values = np.asarray(source.array, dtype=np.float32)
    if in_plane_fwhm > 0:
        sigma_voxels = [in_plane_fwhm / FWHM_PER_SIGMA / s for s in source.spacing_mm]
        values = ndimage.gaussian_filter(values, sigma_voxels, mode="constant")
    to_source = np.linalg.inv(source.affine) @ affine  # target voxel -> source voxel
    sigma_slices = slice_fwhm / FWHM_PER_SIGMA / target[2]  # in target slice units
    per_slice = max(1, math.ceil(target[2] / (SUBSLICE_STEP * source_mm)))
    per_slice += 1 - per_slice % 2  # odd: one sub-slice sits on each slice centre
    half = math.ceil(PROFILE_TRUNCATE_SIGMA * sigma_slices * per_slice) if sigma_slices > 0 else 0
    positions = (np.arange(-half, shape[2] * per_slice + half) - (per_slice - 1) / 2.0) / per_slice
    ii, jj = np.meshgrid(np.arange(shape[0], dtype=np.float64), np.arange(shape[1], dtype=np.float64), indexing="ij")
    in_plane = to_source[:3, 0:1] * ii.ravel() + to_source[:3, 1:2] * jj.ravel() + to_source[:3, 3:4]
    output = np.zeros(shape, dtype=np.float64)
    weight_sums = np.zeros(shape[2], dtype=np.float64)
    slices = np.arange(shape[2])
    for position in positions:
        if sigma_slices > 0:
            weights = np.exp(-0.5 * ((slices - position) / sigma_slices) ** 2)
            weights[np.abs(slices - position) > PROFILE_TRUNCATE_SIGMA * sigma_slices] = 0.0
        else:
            weights = (np.abs(slices - position) < 1e-9).astype(np.float64)
        touched = np.flatnonzero(weights)
        if touched.size == 0:
            continue
        points = in_plane + to_source[:3, 2:3] * position
        plane = ndimage.map_coordinates(values, points, order=1, mode="constant", cval=0.0, prefilter=False)
        plane = plane.reshape(shape[0], shape[1])
        for k in touched:
            output[:, :, k] += weights[k] * plane
        weight_sums[touched] += weights[touched]
    output /= np.maximum(weight_sums, 1e-12)
    return Image(output.astype(np.float32), affine)


def degrade_mask(mask: Image, shape: tuple[int, int, int], affine: np.ndarray) -> Image:
    """Move a binary mask onto a clinical grid: the slice-profile fraction ≥ 0.5 (uint8).

    Label 2 (other pathology, MICCAI) is not WMH: only label 1 is moved. Only the
    target voxels around the lesions' bounding box are computed: outside a convex
    region a symmetric profile's fraction stays below 0.5.
    """
    affine = np.asarray(affine, dtype=np.float64)
    lesion = (mask.array == 1).astype(np.float32)
    moved = np.zeros(shape, dtype=np.uint8)
    if not lesion.any():
        return Image(moved, affine)
    found = np.argwhere(lesion > 0)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    box = found.min(axis=0) - 1.0 + corners * (found.max(axis=0) - found.min(axis=0) + 2.0)
    world = mask.affine[:3, :3] @ box.T + mask.affine[:3, 3:4]
    target = np.linalg.inv(affine)[:3, :3] @ world + np.linalg.inv(affine)[:3, 3:4]
    low = np.clip(np.floor(target.min(axis=1)).astype(int) - 2, 0, np.asarray(shape))
    high = np.clip(np.ceil(target.max(axis=1)).astype(int) + 3, 0, np.asarray(shape))
    if np.any(high <= low):
        return Image(moved, affine)
    sub_affine = affine.copy()
    sub_affine[:3, 3] = affine[:3, :3] @ low + affine[:3, 3]
    fraction = slice_profile_resample(mask.with_array(lesion), tuple(high - low), sub_affine)
    moved[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = fraction.array >= 0.5
    return Image(moved, affine)


def add_synthetic_head(
    brain: Image,
    head: HeadParameters,
    *,
    wm_level: float | None = None,
    pad_mm: float = 25.0,
    contrast: TissueContrast = FLAIR,
) -> Image:
    """Put a scalp, skull and CSF shell around a skull-stripped FLAIR.

    Parameters
    ----------
    brain
        Skull-stripped FLAIR (0 outside the brain).
    head
        Layer thickness scale and extra CSF (:func:`wmhkit.synth.head.draw_head`).
    wm_level
        Signal of normal white matter in ``brain``'s units; default the median of
        the non-zero voxels (a WM-dominated mix).
    pad_mm
        Margin added around the array so the head is not cut by the field of view.
    contrast
        Head tissue signals relative to WM.

    Returns
    -------
    Image
        float32, on ``brain``'s grid padded by ``pad_mm`` on every side (same
        spacing and direction); the brain voxels keep their values.
    """
    values = np.asarray(brain.array, dtype=np.float32)
    inside = values > 0
    if not inside.any():
        raise ValueError("the skull-stripped image is empty: no brain to put a head around")
    level = float(np.median(values[inside])) if wm_level is None else float(wm_level)
    spacing = float(min(brain.spacing_mm))
    pad = [math.ceil(pad_mm / s) for s in brain.spacing_mm]
    values = np.pad(values, [(p, p) for p in pad])
    inside = np.pad(inside, [(p, p) for p in pad])
    affine = brain.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.asarray(pad, dtype=np.float64)
    filled = ndimage.binary_fill_holes(inside)
    sigma = [HULL_SMOOTHING_MM / s for s in brain.spacing_mm]
    hull = (ndimage.gaussian_filter(filled.astype(np.float32), sigma) > 0.5) | filled
    layers = head_fractions(distance_outside_mm(hull, spacing), head)
    signal = np.zeros_like(values)
    for tissue, fraction in layers.items():
        signal += np.float32(getattr(contrast, tissue)) * fraction
    signal *= np.float32(level)
    return Image(np.where(inside, values, signal).astype(np.float32), affine)


def clinical_variant(
    flair: Image,
    gold: Image,
    acquisition: ClinicalAcquisition,
    *,
    head: HeadParameters | None = None,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[Image, Image]:
    """A skull-stripped 1 mm FLAIR and its lesion mask as a clinical scanner would record them.

    Parameters
    ----------
    flair
        Skull-stripped FLAIR (0 outside the brain), e.g. a Lesjak 2018 scan.
    gold
        Its lesion mask (label 1 = WMH; label 2 is dropped) on the FLAIR grid.
    acquisition
        Clinical grid (:func:`clinical_grid` around the brain) and slice profile.
    head
        Head geometry to put around the brain, or None to stay skull-stripped: the
        re-acquired image is then stripped on the clinical grid (0 where the brain's
        slice-profile fraction is below 0.5), as a clinical site's own stripping
        would leave it, not blurred into the background by the slice profile.
    noise
        Rician noise sigma as a fraction of the brain's median signal (0 = none:
        the background stays exactly 0).
    rng
        Source of the noise (required when ``noise > 0``).

    Returns
    -------
    flair, gold
        float32 FLAIR and uint8 mask (slice-profile fraction ≥ 0.5) on the clinical grid.
    """
    shape, affine = clinical_grid(flair, acquisition)
    brain_level = float(np.median(flair.array[flair.array > 0]))
    source = flair if head is None else add_synthetic_head(flair, head, wm_level=brain_level)
    image = slice_profile_resample(source, shape, affine)
    if head is None:
        brain = flair.with_array(ndimage.binary_fill_holes(flair.array > 0).astype(np.uint8))
        image = image.with_array(image.array * degrade_mask(brain, shape, affine).array)
    if noise > 0:
        if rng is None:
            raise ValueError("noise > 0 needs an rng")
        image = add_rician_noise(image, noise * brain_level, rng)
    return image, degrade_mask(gold, shape, affine)


def add_rician_noise(image: Image, sigma: float, rng: np.random.Generator) -> Image:
    """Rician noise of Gaussian ``sigma`` (image units) on every voxel: the background becomes non-zero."""
    values = np.asarray(image.array, dtype=np.float32)
    real = values + rng.standard_normal(values.shape, dtype=np.float32) * np.float32(sigma)
    imaginary = rng.standard_normal(values.shape, dtype=np.float32) * np.float32(sigma)
    return image.with_array(np.sqrt(real * real + imaginary * imaginary))


@dataclass(frozen=True)
class Storage:
    """An on-disk intensity storage: data type, physical range and header scaling.

    The image is first scaled linearly so that its maximum becomes ``physical_max``
    (no rescaling when None); stored codes are ``round((value - inter) / slope)``
    clipped to the type, and a reader applying the header gets ``codes × slope + inter``.
    """

    name: str
    dtype: str
    physical_max: float | None
    slope: float = 1.0
    inter: float = 0.0


#: The storages of clinical files (all round-trip to the scaled intensities within slope / 2).
STORAGES: dict[str, Storage] = {storage.name: storage for storage in (
    Storage("float32", "float32", None),
    # intensities in [0, 1] written as int16 codes spanning -32768..32767 with a fractional slope
    Storage("int16-unit", "int16", 1.0, slope=1.0 / 65535.0, inter=32768.0 / 65535.0),
    Storage("uint8", "uint8", 255.0),
    Storage("uint16", "uint16", 65535.0),
    # intensities in [0, 3000] written as int16 codes -1500..1500 with an intercept of 1500
    Storage("int16-offset", "int16", 3000.0, inter=1500.0),
)}


def stored_intensities(image: Image, storage: Storage) -> tuple[np.ndarray, np.ndarray]:
    """The codes written for ``image`` in ``storage`` and the intensities a reader gets back.

    Returns
    -------
    codes, values
        Arrays of ``image``'s shape: codes in ``storage.dtype``; float64 values
        ``codes × slope + inter``.
    """
    values = np.asarray(image.array, dtype=np.float64)
    if storage.physical_max is not None:
        peak = float(values.max())
        values = values * (storage.physical_max / peak) if peak > 0 else values
    codes = stored_values((values - storage.inter) / storage.slope, storage.dtype)
    return codes, codes.astype(np.float64) * storage.slope + storage.inter


def save_stored_image(image: Image, path: str | os.PathLike[str], storage: Storage) -> Path:
    """Write ``image`` as NIfTI in ``storage`` (codes, slope and intercept in the header), atomically."""
    codes, _ = stored_intensities(image, storage)
    return save_codes(codes, image.affine, path, slope=storage.slope, inter=storage.inter)


def _added_fwhm(target_fwhm_mm: float, existing_fwhm_mm: float) -> float:
    """FWHM (mm) a Gaussian must add to ``existing`` to reach ``target`` (0 when already wider)."""
    return math.sqrt(max(target_fwhm_mm**2 - existing_fwhm_mm**2, 0.0))
