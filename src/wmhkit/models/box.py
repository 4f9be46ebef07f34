"""The GP-Unet input box: the whole brain resampled into a fixed box and normalised; volume targets.

A prepared scan (canonical RAS, brain-box cropped, see :mod:`wmhkit.preprocess.pipeline`)
is resampled into a box of fixed ``shape`` (voxels) whose axes follow the prepared
grid's axes and whose centre is the centre of the brain mask's bounding box:

* ``spacing_mm`` given: the box has that voxel size (the paper: 112×128×32 at
  about 1×1×slice mm), so one box voxel is the same volume in every scan;
* ``spacing_mm`` None ("fit"): each scan's brain bounding box (plus 5 %) is
  stretched to fill the box.

Downsampling is preceded by a Gaussian anti-aliasing filter (σ = (ratio − 1)/2
prepared voxels per axis); resampling is trilinear through world coordinates
(:func:`~wmhkit.preprocess.resample.resample_linear`). The FLAIR is then mapped to
[0, 1] between its 1st and 99th brain percentiles of the box, set to 0 outside
the brain, and clipped to [0, 1] as in the paper; or, with ``percentiles`` None,
kept on the prepare stage's scale (0th–98th brain percentile → 0–1, bright tail
above 1 kept) and only zeroed outside the brain (the clip hides the lesion load:
a larger load raises the 99th percentile). Gold masks become the fraction of each
box voxel that is lesion (trilinear resampling of the 0/1 mask), a soft target whose sum times the
box voxel volume approximates the lesion volume.

Volume targets (:func:`encode_volume` / :func:`decode_volume`): the network
regresses ``log1p(volume_ml)`` by default. WMH volumes are heavily skewed (most
scans under 2 mL, a few over 20 mL): an MSE on raw mL is dominated by the few
large loads and starts with gradients two orders of magnitude larger than on
the small ones. The output is turned back into mL (``expm1``) before anyone
sees it; ``"none"`` regresses mL directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.preprocess.normalize import intensity_range, rescale_to_unit
from wmhkit.preprocess.resample import resample_linear

#: Extra room around the brain bounding box when the box is fitted to it.
FIT_MARGIN = 0.05
#: How a volume target is transformed before regression (see the module docstring).
TARGET_TRANSFORMS: tuple[str, ...] = ("log1p", "none")


def encode_volume(volume_ml: np.ndarray | float, transform: str) -> np.ndarray:
    """The regression target of a volume in mL (``log1p`` or unchanged), float64."""
    if transform not in TARGET_TRANSFORMS:
        raise ValueError(f"target transform must be one of {TARGET_TRANSFORMS}, got {transform!r}")
    volume = np.asarray(volume_ml, dtype=np.float64)
    return np.log1p(np.clip(volume, 0.0, None)) if transform == "log1p" else volume


def decode_volume(output: np.ndarray | float, transform: str) -> np.ndarray:
    """Inverse of :func:`encode_volume`: a network output back to mL, clipped at 0 (float64)."""
    if transform not in TARGET_TRANSFORMS:
        raise ValueError(f"target transform must be one of {TARGET_TRANSFORMS}, got {transform!r}")
    value = np.asarray(output, dtype=np.float64)
    return np.clip(np.expm1(value) if transform == "log1p" else value, 0.0, None)


@dataclass(frozen=True)
class BoxSpec:
    """The fixed input box of a GP-Unet.

    Attributes
    ----------
    shape
        Box size ``(X, Y, Z)`` in voxels.
    spacing_mm
        Box voxel size (mm) along the prepared axes, or None to fit each brain into the box.
    percentiles
        Brain intensity percentiles of the box mapped to 0 and 1 (then clipped), or
        None to keep the prepared intensities.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float] | None
    percentiles: tuple[float, float] | None = (1.0, 99.0)

    def to_dict(self) -> dict[str, object]:
        """``model.yaml`` form."""
        return {"shape": list(self.shape), "spacing_mm": None if self.spacing_mm is None else list(self.spacing_mm),
                "percentiles": None if self.percentiles is None else list(self.percentiles)}

    @classmethod
    def from_dict(cls, record: dict[str, object]) -> BoxSpec:
        """Inverse of :meth:`to_dict`."""
        spacing = record.get("spacing_mm")
        percentiles = record.get("percentiles", (1.0, 99.0))
        return cls(tuple(int(s) for s in record["shape"]),  # type: ignore[arg-type, union-attr]
                   None if spacing is None else tuple(float(s) for s in spacing),  # type: ignore[union-attr]
                   None if percentiles is None else tuple(float(p) for p in percentiles))  # type: ignore[union-attr]


@dataclass(frozen=True, eq=False)
class BoxScan:
    """One scan in its box.

    Attributes
    ----------
    flair
        Normalised FLAIR, float32 ``(X, Y, Z)`` of the box shape (in [0, 1] unless the
        box keeps the prepared intensities).
    brain
        Brain mask in the box (bool).
    affine
        Box voxel-to-world affine (mm).
    lesion_fraction
        Soft gold target in [0, 1] (float32), or None without gold.
    """

    flair: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    lesion_fraction: np.ndarray | None = None

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one box voxel (mL)."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0


def box_affine(brain_mask: Image, spec: BoxSpec) -> np.ndarray:
    """The box's voxel-to-world affine for a scan with this brain mask (see the module docstring).

    Raises
    ------
    ValueError
        When the brain mask is empty.
    """
    brain = np.asarray(brain_mask.array) > 0
    if not brain.any():
        raise ValueError("the brain mask is empty; cannot place the input box")
    corners = np.argwhere(brain)
    low, high = corners.min(axis=0), corners.max(axis=0)
    centre_world = brain_mask.affine @ np.append((low + high) / 2.0, 1.0)
    spacing_prepared = np.asarray(brain_mask.spacing_mm)
    direction = brain_mask.affine[:3, :3] / spacing_prepared
    shape = np.asarray(spec.shape, dtype=np.float64)
    if spec.spacing_mm is None:
        extent_mm = (high - low + 1) * spacing_prepared * (1.0 + FIT_MARGIN)
        spacing = extent_mm / shape
    else:
        spacing = np.asarray(spec.spacing_mm, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing
    affine[:3, 3] = centre_world[:3] - affine[:3, :3] @ ((shape - 1) / 2.0)
    return affine


def to_box(image: Image, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Anti-aliased trilinear resampling of ``image`` into the box (float32, 0 outside ``image``)."""
    box_spacing = np.linalg.norm(affine[:3, :3], axis=0)
    ratio = box_spacing / np.asarray(image.spacing_mm)
    sigma = np.clip((ratio - 1.0) / 2.0, 0.0, None)
    array = np.asarray(image.array, dtype=np.float32)
    if sigma.any():
        array = ndimage.gaussian_filter(array, sigma=sigma, mode="constant")
    return resample_linear(image.with_array(array), Image(np.zeros(shape, np.float32), affine)).array


def from_box(box_map: np.ndarray, affine: np.ndarray, reference: Image) -> Image:
    """Trilinear resampling of a box map back onto ``reference``'s grid (float32, 0 outside the box)."""
    return resample_linear(Image(np.asarray(box_map, dtype=np.float32), affine), reference)


def box_scan(flair: Image, brain_mask: Image, spec: BoxSpec, gold: Image | None = None) -> BoxScan:
    """Put one prepared scan into its box (see the module docstring).

    Parameters
    ----------
    flair, brain_mask
        Prepared FLAIR and brain mask on one grid.
    spec
        The box.
    gold
        Optional gold mask on the same grid (label 1 = WMH; other labels are background).

    Raises
    ------
    ValueError
        When the grids differ or the brain mask is empty.
    MaskError
        When the FLAIR is constant inside the brain.
    """
    if not flair.same_grid(brain_mask) or (gold is not None and not flair.same_grid(gold)):
        raise ValueError("FLAIR, brain mask and gold must lie on one grid")
    affine = box_affine(brain_mask, spec)
    brain = to_box(brain_mask.with_array((brain_mask.array > 0).astype(np.float32)), affine, spec.shape) >= 0.5
    if not brain.any():
        raise ValueError("the brain mask vanished in the box; enlarge the box spacing or shape")
    intensities = to_box(flair, affine, spec.shape)
    if spec.percentiles is None:
        normalised = np.where(brain, intensities, 0.0).astype(np.float32)
    else:
        low, high = intensity_range(intensities, brain, method="percentile", percentiles=spec.percentiles)
        normalised = rescale_to_unit(intensities, brain, low, high, clip_high=True)
    fraction = None
    if gold is not None:
        lesion = gold.with_array((gold.array == 1).astype(np.float32))
        fraction = np.clip(to_box(lesion, affine, spec.shape), 0.0, 1.0).astype(np.float32)
        fraction[~brain] = 0.0
    return BoxScan(normalised, brain, affine, fraction)
