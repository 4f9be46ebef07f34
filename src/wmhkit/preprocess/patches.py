"""Patch and slice helpers for training on prepared (canonical RAS+) volumes.

All volumes are 3D arrays ``(X, Y, Z)`` in canonical RAS+ order, as written by
``wmhkit prepare``: axis 0 runs left→right, axis 1 posterior→anterior, axis 2
inferior→superior.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Plane = Literal["axial", "coronal", "sagittal"]
#: Array axis that a stack of slices in each plane runs along (canonical RAS+ order).
PLANE_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Label of lesion voxels; other non-zero labels (MICCAI 2 = other pathology) are not lesion.
LESION_LABEL = 1


def pad_to_shape(volume: np.ndarray, shape: tuple[int, ...] = (256, 256, 256)) -> np.ndarray:
    """Zero-pad ``volume`` symmetrically to ``shape`` (the extra voxel, if odd, goes at the end).

    Parameters
    ----------
    volume
        Array of shape ``(X, Y, Z)`` with every dimension <= ``shape``.
    shape
        Target shape ``(X', Y', Z')``.

    Returns
    -------
    numpy.ndarray
        Array of shape ``shape``, same dtype; undo with :func:`crop_to_shape`.

    Raises
    ------
    ValueError
        When ``volume`` is larger than ``shape`` along an axis.

    Examples
    --------
    >>> padded = pad_to_shape(np.ones((3, 4, 1)), (5, 4, 4))
    >>> padded.shape, float(crop_to_shape(padded, (3, 4, 1)).sum())
    ((5, 4, 4), 12.0)
    """
    widths = _pad_widths(volume.shape, shape)
    return np.pad(volume, widths, mode="constant", constant_values=0)


def crop_to_shape(padded: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pad_to_shape`: cut the original ``shape`` back out of ``padded``."""
    widths = _pad_widths(shape, padded.shape)
    return padded[tuple(slice(before, before + size) for (before, _), size in zip(widths, shape))]


def patch_origins(shape: tuple[int, int, int], patch_size: int = 64, stride: int = 64) -> np.ndarray:
    """Corner indices of patches that tile a volume of ``shape``.

    Origins step by ``stride``; a last origin at ``size - patch_size`` is added
    along an axis whose end would otherwise be missed, so patches always cover the
    whole volume. Along an axis shorter than a patch the only origin is 0.

    Returns
    -------
    numpy.ndarray
        int array of shape ``(N, 3)``.

    Examples
    --------
    >>> patch_origins((100, 64, 10), patch_size=64, stride=64).tolist()
    [[0, 0, 0], [36, 0, 0]]
    """
    if patch_size < 1 or stride < 1:
        raise ValueError(f"patch_size and stride must be >= 1, got {patch_size} and {stride}")
    per_axis = []
    for size in shape:
        last = max(size - patch_size, 0)
        starts = list(range(0, last + 1, stride))
        if starts[-1] != last:
            starts.append(last)
        per_axis.append(starts)
    grid = np.meshgrid(*per_axis, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1).astype(np.int64)


def extract_patches(
    volume: np.ndarray, patch_size: int = 64, stride: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Cut cubic patches that cover ``volume``.

    Parameters
    ----------
    volume
        Array of shape ``(X, Y, Z)``. Axes shorter than ``patch_size`` (a one-slice
        image, say) are zero-padded at the end so that every patch is full size.
    patch_size
        Edge length ``P`` in voxels.
    stride
        Step between patch origins (``< patch_size`` gives overlapping patches).

    Returns
    -------
    patches : numpy.ndarray
        Shape ``(N, P, P, P)``, same dtype as ``volume``.
    origins : numpy.ndarray
        int array ``(N, 3)``: index of each patch's first voxel in ``volume``.
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (X, Y, Z), got shape {volume.shape}")
    padded_shape = tuple(max(size, patch_size) for size in volume.shape)
    if padded_shape != volume.shape:
        volume = np.pad(volume, [(0, p - s) for s, p in zip(volume.shape, padded_shape)])
    origins = patch_origins(volume.shape, patch_size, stride)
    patches = np.stack(
        [volume[x : x + patch_size, y : y + patch_size, z : z + patch_size] for x, y, z in origins]
    )
    return patches, origins


def keep_lesion_patches(
    patches: np.ndarray,
    label_patches: np.ndarray,
    origins: np.ndarray,
    *,
    min_lesion_voxels: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the patches whose label patch has at least ``min_lesion_voxels`` lesion voxels.

    Parameters
    ----------
    patches, label_patches
        Shape ``(N, P, P, P)`` each (image and matching labels, from
        :func:`extract_patches` with the same settings).
    origins
        Shape ``(N, 3)``.
    min_lesion_voxels
        Voxels equal to :data:`LESION_LABEL` a patch needs to be kept (other labels, e.g. 2 = other
        pathology, do not count).

    Returns
    -------
    tuple of numpy.ndarray
        ``(patches, label_patches, origins)`` restricted to the kept patches.
    """
    if not (patches.shape[0] == label_patches.shape[0] == origins.shape[0]):
        raise ValueError(
            f"patches ({patches.shape[0]}), labels ({label_patches.shape[0]}) and origins "
            f"({origins.shape[0]}) must have the same count"
        )
    counts = (label_patches == LESION_LABEL).reshape(label_patches.shape[0], -1).sum(axis=1)
    keep = counts >= min_lesion_voxels
    return patches[keep], label_patches[keep], origins[keep]


def slices_along(volume: np.ndarray, plane: Plane) -> np.ndarray:
    """Stack of 2D slices of a canonical RAS+ volume in ``plane``.

    Parameters
    ----------
    volume
        Array ``(X, Y, Z)`` in RAS+ order.
    plane
        ``"axial"`` (slices along Z: returns ``(Z, X, Y)``), ``"coronal"`` (along Y:
        ``(Y, X, Z)``) or ``"sagittal"`` (along X: ``(X, Y, Z)``).

    Returns
    -------
    numpy.ndarray
        A view with the slice index first.

    Examples
    --------
    >>> slices_along(np.zeros((2, 3, 4)), "axial").shape
    (4, 2, 3)
    """
    if plane not in PLANE_AXIS:
        raise ValueError(f"plane must be one of {sorted(PLANE_AXIS)}, got {plane!r}")
    return np.moveaxis(volume, PLANE_AXIS[plane], 0)


def _pad_widths(inner: tuple[int, ...], outer: tuple[int, ...]) -> list[tuple[int, int]]:
    if len(inner) != len(outer):
        raise ValueError(f"shape {tuple(inner)} and target {tuple(outer)} differ in dimensions")
    too_big = [i for i, (a, b) in enumerate(zip(inner, outer)) if a > b]
    if too_big:
        raise ValueError(
            f"volume shape {tuple(inner)} exceeds the target {tuple(outer)} along axis {too_big}; "
            "crop to the brain first or choose a larger shape"
        )
    return [((b - a) // 2, (b - a) - (b - a) // 2) for a, b in zip(inner, outer)]
