"""Image formation: sample a subject onto a scanner's grid and make its FLAIR, T1 and truth masks.

For each voxel of the scanner grid (and, for 2D profiles, several positions
across the slice thickness) the subject's world position is warped, mapped to
the template (:func:`wmhkit.synth.anatomy.template_voxel_coordinates`) and the
tissue, rim, lesion and head fractions are sampled trilinearly. Signals follow
:mod:`wmhkit.synth.contrast`; averaging over the slice positions gives the
thick-slice partial volume. The gold mask is the averaged lesion fraction
≥ 0.5 and the true brain mask the averaged brain fraction ≥ 0.5, both on the
FLAIR grid. A smooth multiplicative bias field and Rician noise come last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.synth.anatomy import AnatomyParameters, rotation_matrix, template_voxel_coordinates
from wmhkit.synth.contrast import tissue_signal
from wmhkit.synth.fields import smooth_random_field
from wmhkit.synth.head import HeadParameters, head_fractions
from wmhkit.synth.lesions import LesionMaps
from wmhkit.synth.scanners import ScannerProfile
from wmhkit.synth.template import Template

#: Lattice (mm) of the smooth subject warp and of the bias field.
WARP_LATTICE_MM = 40.0
BIAS_LATTICE_MM = 70.0
#: Spacing (in template voxels) of the positions averaged across a thick slice.
SLICE_SAMPLE_STEP = 1.5
#: Distance (mm) reported outside the template grid: air.
_FAR_MM = 1000.0
_AXIS_SIGNS = {"RAS": (1.0, 1.0, 1.0), "LPS": (-1.0, -1.0, 1.0)}


@dataclass(frozen=True, eq=False)
class Acquisition:
    """One subject as a scanner records it; all images share the FLAIR grid.

    Attributes
    ----------
    flair, t1
        float32 images in stored units (WM ≈ the profile's ``wm_level``), not yet cast.
    gold
        uint8 lesion mask (averaged lesion fraction ≥ 0.5).
    brain_mask
        uint8 true brain mask (averaged brain fraction ≥ 0.5).
    ventricle_distance_mm
        float32 distance of each gold voxel to the ventricles (template mm); +inf elsewhere.
    """

    flair: Image
    t1: Image
    gold: Image
    brain_mask: Image
    ventricle_distance_mm: np.ndarray


def scanner_grid(profile: ScannerProfile, scale: float = 1.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of a profile's image grid, centred on the scanner isocentre.

    Parameters
    ----------
    profile
        Scanner profile.
    scale
        Multiplies the voxel size (the field of view is kept); 1 = the profile's own.

    Returns
    -------
    shape, affine
        Grid shape and 4×4 voxel-to-world (RAS+ mm) matrix; LPS profiles have
        negative first two columns, oblique profiles a rotated direction matrix.
    """
    spacing = np.asarray(profile.spacing_mm, dtype=np.float64) * scale
    shape = tuple(int(max(2, round(f / s))) for f, s in zip(profile.fov_mm, spacing))
    signs = np.asarray(_AXIS_SIGNS[profile.orientation])
    direction = rotation_matrix(profile.oblique_deg) @ np.diag(signs * spacing)
    affine = np.eye(4)
    affine[:3, :3] = direction
    affine[:3, 3] = -direction @ ((np.asarray(shape) - 1) / 2.0)
    return shape, affine  # type: ignore[return-value]


def acquire(
    template: Template,
    lesions: LesionMaps,
    anatomy: AnatomyParameters,
    head: HeadParameters | None,
    profile: ScannerProfile,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> Acquisition:
    """Form the FLAIR, T1, gold and true brain mask of one subject on ``profile``'s grid.

    Parameters
    ----------
    template, lesions, anatomy
        The subject (template anatomy, its lesions on the template grid, its warp and atrophy).
    head
        Head geometry, or None for a skull-stripped image (zero outside the brain).
    profile
        Scanner profile (grid, contrast, noise, bias).
    rng
        Source of the warp, bias and noise.
    scale
        Voxel-size multiplier for quick, coarse phantoms (1 = the profile's own grid).
    """
    shape, affine = scanner_grid(profile, scale)
    spacing = np.asarray(profile.spacing_mm) * scale
    per_slice = max(1, math.ceil(spacing[2] / (SLICE_SAMPLE_STEP * template.spacing_mm))) if profile.two_d else 1
    index_axes = [np.arange(shape[0], dtype=np.float32), np.arange(shape[1], dtype=np.float32),
                  ((np.arange(shape[2] * per_slice, dtype=np.float32) + 0.5) / per_slice - 0.5)]
    sample_shape = (shape[0], shape[1], shape[2] * per_slice)
    world = _world_positions(affine, index_axes)
    axes_mm = [axis * float(s) for axis, s in zip(index_axes, spacing)]
    for component in range(3):
        world[component] += smooth_random_field(axes_mm, WARP_LATTICE_MM, anatomy.warp_rms_mm / math.sqrt(3.0), rng)
    coordinates = template_voxel_coordinates(world.reshape(3, -1), anatomy, template)
    del world
    fractions = _sample_fractions(template, lesions, anatomy, head, coordinates)
    brain = fractions.pop("brain")
    flair = tissue_signal(profile.flair, fractions)
    t1 = tissue_signal(profile.t1, fractions)
    averaged = {name: _slice_average(values, sample_shape, per_slice)
                for name, values in (("flair", flair), ("t1", t1), ("lesion", fractions["lesion"]), ("brain", brain))}
    gold = (averaged["lesion"] >= 0.5).astype(np.uint8)
    brain_mask = (averaged["brain"] >= 0.5).astype(np.uint8)
    centre = coordinates.reshape(3, *sample_shape)[..., per_slice // 2::per_slice]
    ventricle_distance = np.full(shape, np.inf, dtype=np.float32)
    ventricle_distance[gold > 0] = ndimage.map_coordinates(
        template.ventricle_distance_mm, centre[:, gold > 0], order=1, prefilter=False, mode="nearest")
    grid_axes_mm = [np.arange(n) * float(s) for n, s in zip(shape, spacing)]
    flair_stored = _record(averaged["flair"], profile.bias_rms, profile.noise, profile.wm_level, grid_axes_mm, rng)
    t1_stored = _record(averaged["t1"], profile.bias_rms * 0.7, profile.noise, profile.wm_level, grid_axes_mm, rng)
    if head is None:
        flair_stored *= brain_mask
        t1_stored *= brain_mask
    return Acquisition(
        flair=Image(flair_stored, affine), t1=Image(t1_stored, affine), gold=Image(gold, affine),
        brain_mask=Image(brain_mask, affine), ventricle_distance_mm=ventricle_distance,
    )


def _world_positions(affine: np.ndarray, index_axes: list[np.ndarray]) -> np.ndarray:
    """``(3, X, Y, Z)`` float32 world positions (mm) of the grid spanned by ``index_axes``."""
    columns = affine.astype(np.float32)
    world = np.empty((3, *(len(a) for a in index_axes)), dtype=np.float32)
    for row in range(3):
        world[row] = (columns[row, 0] * index_axes[0][:, None, None] + columns[row, 1] * index_axes[1][None, :, None]
                      + columns[row, 2] * index_axes[2][None, None, :] + columns[row, 3])
    return world


def _sample_fractions(
    template: Template, lesions: LesionMaps, anatomy: AnatomyParameters, head: HeadParameters | None,
    coordinates: np.ndarray,
) -> dict[str, np.ndarray]:
    """Tissue fractions at ``coordinates`` (template voxels), with atrophy and head applied."""

    def sample(volume: np.ndarray, points: np.ndarray = coordinates, cval: float = 0.0) -> np.ndarray:
        return ndimage.map_coordinates(volume, points, order=1, prefilter=False, mode="constant", cval=cval,
                                       output=np.float32)

    gm, wm, csf = sample(template.gm), sample(template.wm), sample(template.csf)
    brain = gm + wm + csf
    atrophied = np.minimum(np.float32(anatomy.cortical_atrophy) * sample(template.sulcal), gm)
    gm -= atrophied
    csf += atrophied
    lesion, lesion_signal = _sample_lesions(lesions, coordinates, sample)
    np.minimum(lesion, wm, out=lesion)
    fractions = {"gm": gm, "wm": wm - lesion, "csf": csf, "lesion": lesion, "lesion_signal": lesion_signal,
                 "rim": sample(template.rim), "brain": brain}
    if head is not None:
        outside_brain = np.clip(1.0 - brain, 0.0, 1.0)
        layers = head_fractions(sample(template.outside_distance_mm, cval=_FAR_MM), head)
        for tissue, fraction in layers.items():
            fraction *= outside_brain
            if tissue == "csf":
                csf += fraction
            else:
                fractions[tissue] = fraction
    return fractions


def _sample_lesions(
    lesions: LesionMaps, coordinates: np.ndarray, sample: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Lesion fraction and signal at ``coordinates``, sampling only points inside the lesions' box."""
    fraction = np.zeros(coordinates.shape[1], dtype=np.float32)
    signal = np.zeros(coordinates.shape[1], dtype=np.float32)
    if lesions.box is None:
        return fraction, signal
    low = np.array([s.start for s in lesions.box], dtype=np.float32)
    high = np.array([s.stop for s in lesions.box], dtype=np.float32)
    inside = np.all((coordinates > (low - 1.0)[:, None]) & (coordinates < high[:, None]), axis=0)
    local = coordinates[:, inside] - low[:, None]
    fraction[inside] = sample(lesions.fraction[lesions.box], local)
    signal[inside] = sample(lesions.signal[lesions.box], local)
    return fraction, signal


def _slice_average(values: np.ndarray, sample_shape: tuple[int, int, int], per_slice: int) -> np.ndarray:
    """Mean over the ``per_slice`` positions of each thick slice: ``(X, Y, Z)`` float32."""
    volume = values.reshape(sample_shape)
    if per_slice == 1:
        return volume
    x, y, z = sample_shape
    return volume.reshape(x, y, z // per_slice, per_slice).mean(axis=3, dtype=np.float32)


def _record(
    signal: np.ndarray, bias_rms: float, noise: float, wm_level: float, axes_mm: list[np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """Apply a smooth bias field, Rician noise (sigma = ``noise`` × WM) and the stored WM level."""
    biased = signal * np.exp(smooth_random_field(axes_mm, BIAS_LATTICE_MM, bias_rms, rng))
    real = biased + rng.standard_normal(biased.shape, dtype=np.float32) * np.float32(noise)
    imaginary = rng.standard_normal(biased.shape, dtype=np.float32) * np.float32(noise)
    return (np.sqrt(real * real + imaginary * imaginary) * np.float32(wm_level)).astype(np.float32)
