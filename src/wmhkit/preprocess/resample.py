"""Resampling through world coordinates: a T1 onto the FLAIR grid, and scans onto a model's working grid.

:func:`resample_linear` brings a T1 acquired on its own grid onto the FLAIR grid
(same scanner session, so the two share world coordinates). An input label
image on the wrong grid stays an error (:class:`~wmhkit.errors.GeometryError`).

The working grid (:func:`working_grid`) is the spacing a model's networks work
at, as nnU-Net's target spacing: the grid of the RAS-reoriented scan with the
same axes, centre and (to within half a working voxel) world extent, at the
model's ``working_spacing_mm``, except that an axis whose native spacing is at
least ``thick_slice_mm`` keeps it (the slices of a 2D acquisition are never
interpolated to thin ones). :func:`resample_to_grid` moves images there with
SimpleITK: linear interpolation for intensities and probabilities, after a
Gaussian anti-aliasing filter along every axis that is downsampled (σ = (t − s)/2 mm
for native spacing s and target t, scikit-image's rule), and nearest neighbour for
labels (so gold label 2 stays 2). Linear rather than B-spline: a B-spline
overshoots at the brain/background edge and would put negative intensities and
probabilities outside [0, 1] into the maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from wmhkit.io.image import Image
from wmhkit.io.sitk import to_sitk

#: Spacings (mm) closer than this count as equal: no resampling to the working grid.
SPACING_ATOL_MM = 1e-3


def resample_linear(image: Image, reference: Image) -> Image:
    """Trilinear resampling of ``image`` onto ``reference``'s grid (shape and affine).

    Parameters
    ----------
    image
        Intensity image, any grid.
    reference
        Image whose grid the result takes (its values are not used).

    Returns
    -------
    Image
        float32 array of ``reference.shape`` with ``reference.affine``; voxels
        outside ``image``'s field of view are 0.

    Examples
    --------
    >>> coarse = Image(np.arange(8.0).reshape(2, 2, 2), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> fine = Image(np.zeros((3, 3, 3)), np.eye(4))
    >>> float(resample_linear(coarse, fine).array[1, 1, 1])
    3.5
    """
    # reference voxel -> world -> image voxel, one 4x4 matrix for scipy's affine_transform
    voxel_map = np.linalg.inv(image.affine) @ reference.affine
    resampled = ndimage.affine_transform(
        np.asarray(image.array, dtype=np.float32), voxel_map[:3, :3], offset=voxel_map[:3, 3],
        output_shape=reference.shape, order=1, mode="constant", cval=0.0,
    )
    return Image(resampled.astype(np.float32), reference.affine)


def thick_axes(spacing_mm: Sequence[float], thick_slice_mm: float) -> tuple[int, ...]:
    """The array axes whose spacing is at least ``thick_slice_mm`` (the slice axes of a 2D acquisition).

    Parameters
    ----------
    spacing_mm
        Voxel size along each array axis (mm), e.g. :attr:`Image.spacing_mm` of the RAS-reoriented scan.
    thick_slice_mm
        Thick-slice threshold (mm).

    Examples
    --------
    >>> thick_axes((0.9, 6.5, 0.9), 3.0)
    (1,)
    """
    return tuple(axis for axis, spacing in enumerate(spacing_mm) if spacing >= thick_slice_mm)


def working_grid(
    image: Image, working_spacing_mm: Sequence[float] | None, thick_slice_mm: float
) -> tuple[tuple[int, int, int], np.ndarray] | None:
    """The working grid of ``image``, or None when it is ``image``'s own grid.

    Parameters
    ----------
    image
        The scan (any storage order; in ``prepare``, the RAS-reoriented one), shape ``(X, Y, Z)``.
    working_spacing_mm
        Target spacing along the three array axes (mm); None keeps the native grid.
    thick_slice_mm
        Axes whose native spacing is at least this (mm) keep their native spacing.

    Returns
    -------
    tuple or None
        ``(shape, affine)``: same axis directions and centre as ``image``, spacing the
        target (or native on thick axes), ``shape[i] = max(1, round(X_i * s_i / t_i))``;
        None when every axis keeps its spacing (within :data:`SPACING_ATOL_MM`).

    Examples
    --------
    >>> flair = Image(np.zeros((200, 200, 20), np.float32), np.diag([0.9, 0.9, 6.5, 1.0]))
    >>> shape, affine = working_grid(flair, (1.0, 1.0, 1.0), 3.0)
    >>> shape, np.diag(affine).round(3).tolist()
    ((180, 180, 20), [1.0, 1.0, 6.5, 1.0])
    >>> working_grid(flair, (0.9, 0.9, 1.0), 3.0) is None
    True
    """
    if working_spacing_mm is None:
        return None
    native = np.asarray(image.spacing_mm, dtype=np.float64)
    thick = np.isin(np.arange(3), thick_axes(native, thick_slice_mm))
    target = np.where(thick, native, np.asarray(working_spacing_mm, dtype=np.float64))
    if np.all(np.abs(target - native) <= SPACING_ATOL_MM):
        return None
    shape = tuple(max(1, round(n * s / t)) for n, s, t in zip(image.shape, native, target))
    affine = image.affine.copy()
    affine[:3, :3] = image.affine[:3, :3] / native * target
    centre = image.affine[:3, :3] @ ((np.asarray(image.shape) - 1) / 2.0) + image.affine[:3, 3]
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return shape, affine  # type: ignore[return-value]


def resample_to_grid(image: Image, shape: Sequence[int], affine: np.ndarray, *, labels: bool = False) -> Image:
    """Resample ``image`` onto the grid ``(shape, affine)`` through world coordinates (SimpleITK).

    Parameters
    ----------
    image
        Source image, shape ``(X, Y, Z)``.
    shape, affine
        Target grid: shape and 4×4 voxel-to-world affine (mm).
    labels
        True for label images: nearest neighbour, dtype kept. Otherwise linear
        interpolation after Gaussian anti-aliasing along downsampled axes (see the
        module docstring), float32.

    Returns
    -------
    Image
        On the target grid; 0 where the target lies outside ``image``'s field of view.

    Examples
    --------
    >>> coarse = Image(np.array([0.0, 2.0]).reshape(2, 1, 1), np.diag([2.0, 1.0, 1.0, 1.0]))
    >>> resample_to_grid(coarse, (4, 1, 1), np.eye(4)).array.ravel().tolist()
    [0.0, 1.0, 2.0, 0.0]
    """
    shape = tuple(int(s) for s in shape)
    target_affine = np.asarray(affine, dtype=np.float64)
    array = image.array.astype(np.uint8) if image.array.dtype == bool else image.array
    # World coordinates stay RAS: every image of one resampling shares the frame, so the map is the same.
    source = to_sitk(array if labels else array.astype(np.float32), image.affine, lps=False)
    if not labels:
        source_spacing = np.asarray(image.spacing_mm)
        target_spacing = np.linalg.norm(target_affine[:3, :3], axis=0)
        sigma_mm = np.clip((target_spacing - source_spacing) / 2.0, 0.0, None)
        if np.any(sigma_mm > 0):
            source = sitk.DiscreteGaussian(source, (sigma_mm ** 2).tolist(), 64, 0.01, True)
    reference = to_sitk(np.zeros(shape, dtype=np.uint8), target_affine, lps=False)
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    resampled = sitk.Resample(source, reference, sitk.Transform(), interpolator, 0.0,
                              source.GetPixelID())
    array = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)
    return Image(np.ascontiguousarray(array.astype(image.array.dtype if labels else np.float32)), target_affine)


