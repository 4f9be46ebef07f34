"""White matter hyperintensities drawn on the template grid.

Burden: a log-normal total volume whose median grows with stage (CN 2 mL,
MCI 5 mL, AD 11 mL at 70 years) and by 5 %/year of age (:func:`target_burden_ml`).
It is split between

* periventricular lesions: WM within a variable distance of the ventricles.
  The distance threshold is modulated by smooth noise and is larger at the
  frontal and occipital horns, so a small burden gives caps and a thin band, a
  large one a smooth halo that turns confluent and irregular into deep WM. The
  threshold is calibrated so the volume matches its share of the burden;
* deep lesions: punctate foci (radius 1–2.5 mm) and patchy lesions (3–7 mm,
  two or three merged irregular ellipsoids) centred in deep WM; patchy ones
  become more frequent with burden;
* optionally (drawn first), lesions taken from a library of real lesion masks
  in MNI space (mapped through world coordinates, randomly mirrored
  left-right; whole connected lesions are added while the total stays within
  1.2 × a third to two thirds of the burden); procedural lesions fill the rest.

Volumes (the burden and those in ``parameters``) count template voxels with a
lesion fraction ≥ 0.5, the rule of the gold mask. Lesions replace WM only (the
fraction is capped at 1.25 × the WM fraction), and every
lesion carries a contrast from faint (0.15) to bright (1.3) that the intensity
models scale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from wmhkit.errors import InputError
from wmhkit.synth.fields import smooth_random_field
from wmhkit.synth.template import Template

#: Median total WMH volume (mL) at 70 years, per clinical stage.
STAGE_MEDIAN_BURDEN_ML: dict[str, float] = {"CN": 2.0, "MCI": 5.0, "AD": 11.0}
#: Relative growth of the median burden per year of age.
BURDEN_AGE_SLOPE = 0.05
#: Spread (sigma of the log) of the burden around its median.
BURDEN_LOG_SIGMA = 0.6
#: Periventricular lesions are drawn within this distance of the ventricles (mm).
_PV_SEARCH_MM = 30.0


@dataclass(frozen=True, eq=False)
class LesionMaps:
    """Lesions on the template grid.

    Attributes
    ----------
    fraction
        float32 ``(X, Y, Z)`` lesion fraction of each voxel (0..1, ≤ the WM fraction).
    signal
        float32 ``(X, Y, Z)``: fraction × lesion contrast (faint 0.15 … bright 1.3).
    box
        Index slices of the smallest box holding every lesion voxel (None when empty).
    parameters
        What was drawn (volumes in mL, counts, library file), for provenance.
    """

    fraction: np.ndarray
    signal: np.ndarray
    box: tuple[slice, slice, slice] | None
    parameters: dict[str, object]


def target_burden_ml(stage: str, age: float, rng: np.random.Generator) -> float:
    """Draw a subject's total WMH volume (mL) for ``stage`` and ``age`` (years).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> medians = [np.median([target_burden_ml(s, 70.0, rng) for _ in range(300)]) for s in ("CN", "MCI", "AD")]
    >>> bool(medians[0] < medians[1] < medians[2])
    True
    """
    if stage not in STAGE_MEDIAN_BURDEN_ML:
        raise ValueError(f"stage must be one of {sorted(STAGE_MEDIAN_BURDEN_ML)}, got {stage!r}")
    median = STAGE_MEDIAN_BURDEN_ML[stage] * np.exp(BURDEN_AGE_SLOPE * (age - 70.0))
    return float(np.clip(median * np.exp(rng.normal(0.0, BURDEN_LOG_SIGMA)), 0.1, 80.0))


def generate_lesions(
    template: Template,
    burden_ml: float,
    rng: np.random.Generator,
    library: tuple[Path, ...] = (),
) -> LesionMaps:
    """Draw lesions of about ``burden_ml`` total volume on ``template``'s grid.

    Parameters
    ----------
    template
        The anatomy (ventricle distance, WM, deep WM).
    burden_ml
        Target total lesion volume (mL); the result is within a few percent for
        burdens well above one voxel.
    rng
        Source of every random choice.
    library
        Real lesion masks (NIfTI, any grid with a valid affine). When given, up
        to about a third to two thirds of the burden comes from one of them.
    """
    fraction = np.zeros(template.shape, dtype=np.float32)
    signal = np.zeros(template.shape, dtype=np.float32)
    parameters: dict[str, object] = {"target_ml": round(burden_ml, 4)}
    library_ml = 0.0
    if library:
        chosen = library[int(rng.integers(len(library)))]
        parameters["library_file"] = chosen.name
        library_ml = _add_library(template, chosen, burden_ml * float(rng.uniform(0.33, 0.67)), rng,
                                  fraction, signal)
        parameters["library_ml"] = library_ml
    procedural_ml = max(burden_ml - library_ml, 0.0)
    pv_ml = procedural_ml * float(rng.uniform(0.55, 0.85))
    parameters["periventricular_ml"] = _add_periventricular(template, pv_ml, rng, fraction, signal)
    parameters.update(_add_deep(template, procedural_ml - pv_ml, burden_ml, rng, fraction, signal))
    cap = np.clip(template.wm * 1.25, 0.0, 1.0)
    np.minimum(fraction, cap, out=fraction)
    np.minimum(signal, fraction * 1.3, out=signal)
    parameters["total_ml"] = round(float((fraction >= 0.5).sum()) * template.voxel_volume_ml, 4)
    return LesionMaps(fraction, signal, _bounding_box(fraction > 0), parameters)


def _add_periventricular(
    template: Template, volume_ml: float, rng: np.random.Generator, fraction: np.ndarray, signal: np.ndarray
) -> float:
    spacing = template.spacing_mm
    near = (template.ventricle_distance_mm > 0) & (template.ventricle_distance_mm < _PV_SEARCH_MM) & (template.wm > 0.3)
    box = _bounding_box(near)
    if box is None or volume_ml <= 0:
        return 0.0
    axes = [np.arange(s.start, s.stop) * spacing for s in box]
    modulation = np.exp(smooth_random_field(axes, 12.0, 0.45, rng))
    # Caps: thicker at the frontal and occipital horns (far from the ventricles' centre along y).
    y_mm = (np.arange(box[1].start, box[1].stop) * spacing + template.affine[1, 3]) - template.ventricle_centre_mm[1]
    horn = 1.0 + float(rng.uniform(1.0, 2.5)) * np.clip(np.abs(y_mm) / 35.0, 0.0, 1.0)[None, :, None] ** 3
    scaled_distance = template.ventricle_distance_mm[box] / (modulation * horn)
    eligible = near[box]
    candidates = scaled_distance[eligible]
    wanted = int(round(volume_ml / template.voxel_volume_ml))
    if wanted < 1 or candidates.size == 0:
        return 0.0
    # The `wanted` voxels of smallest scaled distance get fraction ≥ 0.5; the soft edge adds partial volume.
    threshold = float(np.partition(candidates, min(wanted, candidates.size) - 1)[min(wanted, candidates.size) - 1])
    edge = np.clip((threshold - scaled_distance) / spacing + 0.5, 0.0, 1.0) * eligible
    contrast = float(rng.uniform(0.5, 1.1)) * np.clip(0.75 + smooth_random_field(axes, 15.0, 0.3, rng), 0.2, 1.3)
    # Brightest next to the ventricles, fading towards the lesion's outer edge.
    core = np.clip((threshold - scaled_distance) / max(threshold, spacing), 0.0, 1.0)
    np.maximum(fraction[box], edge, out=fraction[box])
    np.maximum(signal[box], edge * contrast * _core_profile(core), out=signal[box])
    return round(float((edge >= 0.5).sum()) * template.voxel_volume_ml, 4)


def _add_deep(
    template: Template, volume_ml: float, burden_ml: float, rng: np.random.Generator,
    fraction: np.ndarray, signal: np.ndarray,
) -> dict[str, object]:
    sites = np.argwhere(template.deep_wm & (template.ventricle_distance_mm > 8.0))
    spacing = template.spacing_mm
    patchy_probability = float(np.clip(burden_ml / 25.0, 0.1, 0.7))
    added_ml = 0.0
    counts = {"punctate": 0, "patchy": 0}
    smallest_ml = 0.5 * template.voxel_volume_ml
    while volume_ml - added_ml > smallest_ml and sites.size:
        centre = sites[int(rng.integers(len(sites)))]
        remaining_ml = volume_ml - added_ml
        patchy = remaining_ml > 0.3 and rng.random() < patchy_probability
        parts = int(rng.integers(2, 4)) if patchy else 1
        # Never overshoot: one part is at most the sphere holding the remaining volume.
        largest_mm = (3.0 * remaining_ml * 1000.0 / (4.0 * np.pi * parts)) ** (1.0 / 3.0)
        radius_mm = min(rng.uniform(3.0, 7.0) if patchy else rng.uniform(1.0, 2.5), max(largest_mm, 0.8))
        contrast = float(rng.uniform(0.3, 1.2)) if patchy else float(rng.uniform(0.15, 0.9))
        for _ in range(parts):
            offset_mm = rng.normal(0.0, radius_mm * 0.6, size=3) if parts > 1 else np.zeros(3)
            axes_mm = radius_mm * rng.uniform(0.6, 1.3, size=3)
            added = _add_ellipsoid(fraction, signal, centre + offset_mm / spacing, axes_mm, spacing, contrast, rng)
            added_ml += added * template.voxel_volume_ml
        counts["patchy" if patchy else "punctate"] += 1
    return {"deep_ml": round(added_ml, 4), "deep_punctate": counts["punctate"], "deep_patchy": counts["patchy"]}


def _add_ellipsoid(
    fraction: np.ndarray, signal: np.ndarray, centre: np.ndarray, axes_mm: np.ndarray, spacing: float,
    contrast: float, rng: np.random.Generator,
) -> int:
    """Paint an axis-aligned ellipsoid with a one-voxel soft (partial volume) edge.

    Returns the number of voxels that it brought to a lesion fraction ≥ 0.5.
    """
    reach = np.ceil(axes_mm / spacing).astype(int) + 2
    low = np.maximum(np.floor(centre).astype(int) - reach, 0)
    high = np.minimum(np.floor(centre).astype(int) + reach + 1, fraction.shape)
    if np.any(high <= low):
        return 0
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high))]
    radius = np.sqrt(sum(((g - c) * spacing / a) ** 2 for g, c, a in zip(grids, centre, axes_mm)))
    # Irregular outline: the normalised radius is modulated by smooth noise on the lesion's own scale.
    local_axes = [np.arange(a, b) * spacing for a, b in zip(low, high)]
    radius = radius * np.exp(smooth_random_field(local_axes, max(float(np.mean(axes_mm)), spacing), 0.2, rng))
    # Distance to the surface in mm (approximately, scaled by the mean semi-axis) → soft edge.
    edge = np.clip((1.0 - radius) * float(np.mean(axes_mm)) / spacing + 0.5, 0.0, 1.0).astype(np.float32)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    before = int((fraction[box] >= 0.5).sum())
    np.maximum(fraction[box], edge, out=fraction[box])
    core = np.clip(1.0 - radius, 0.0, 1.0)
    np.maximum(signal[box], edge * np.float32(contrast) * _core_profile(core), out=signal[box])
    return int((fraction[box] >= 0.5).sum()) - before


def _core_profile(core: np.ndarray) -> np.ndarray:
    """Relative lesion contrast from rim (core 0: 45 %) to centre (core 1: 100 %)."""
    return (0.45 + 0.55 * np.sqrt(core)).astype(np.float32)


def lesion_library_files(folder: str | Path) -> tuple[Path, ...]:
    """The ``*.nii``/``*.nii.gz`` lesion masks in ``folder`` (sorted).

    Raises
    ------
    InputError
        When the folder does not exist or holds no NIfTI file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "lesion library folder does not exist", "pass a folder of lesion masks in MNI space")
    files = tuple(sorted(p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")) and p.is_file()))
    if not files:
        raise InputError(folder, "lesion library folder holds no .nii/.nii.gz file",
                         "pass a folder of lesion masks in MNI space")
    return files


def _add_library(
    template: Template, path: Path, volume_ml: float, rng: np.random.Generator,
    fraction: np.ndarray, signal: np.ndarray,
) -> float:
    mirror = bool(rng.random() < 0.5)
    library = _library_on_template(path, template, mirror)
    labels, count = ndimage.label(library > 0.25)
    if count == 0 or volume_ml <= 0:
        return 0.0
    added = np.zeros(template.shape, dtype=bool)
    total_ml = 0.0
    sizes = ndimage.sum_labels(library >= 0.5, labels, index=np.arange(1, count + 1)) * template.voxel_volume_ml
    for label in rng.permutation(count) + 1:
        size_ml = float(sizes[label - 1])
        if total_ml + size_ml > 1.2 * volume_ml:  # whole lesions only, never far past the share
            continue
        added |= labels == label
        total_ml += size_ml
    piece = np.where(added, library, 0.0).astype(np.float32)
    contrast = float(rng.uniform(0.4, 1.1))
    np.maximum(fraction, piece, out=fraction)
    np.maximum(signal, piece * np.float32(contrast), out=signal)
    return round(total_ml, 4)


def _library_on_template(path: Path, template: Template, mirror: bool) -> np.ndarray:
    return library_on_grid(path, template.shape, tuple(template.affine.ravel().tolist()), mirror)


@functools.lru_cache(maxsize=16)
def library_on_grid(path: Path, shape: tuple[int, int, int], affine_flat: tuple[float, ...], mirror: bool) -> np.ndarray:
    """Lesion fraction (0–1, float32, ``shape``) of a library mask on a grid, mapped through world coordinates
    (trilinear); ``affine_flat`` is the grid's 4×4 affine, raveled; ``mirror`` flips world x (left ↔ right)."""
    try:
        nifti = nib.load(path)
        mask = (np.asarray(nifti.dataobj, dtype=np.float32) > 0).astype(np.float32)
    except Exception as exc:  # nibabel raises many types on unreadable files
        raise InputError(path, f"lesion library mask is not a readable NIfTI ({exc})", "remove or fix the file") from exc
    if mask.ndim != 3:
        raise InputError(path, f"lesion library mask has shape {mask.shape}, not 3D", "keep 3D masks only")
    grid_affine = np.asarray(affine_flat).reshape(4, 4)
    world = grid_affine
    if mirror:  # the template is symmetric, so x → -x is a valid new lesion pattern
        world = np.diag([-1.0, 1.0, 1.0, 1.0]) @ grid_affine
    grid_to_mask = np.linalg.inv(nifti.affine) @ world
    return ndimage.affine_transform(mask, grid_to_mask[:3, :3], offset=grid_to_mask[:3, 3], output_shape=shape,
                                    order=1, mode="constant", cval=0.0, prefilter=False).astype(np.float32)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    if not mask.any():
        return None
    slices = ndimage.find_objects(mask.astype(np.uint8))[0]
    return slices  # type: ignore[return-value]
