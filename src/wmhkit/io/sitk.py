"""Voxel arrays as SimpleITK images: the one converter of every module that hands images to ITK."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

#: RAS (NIfTI) → LPS (ITK) world axes.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def to_sitk(array: np.ndarray, affine: np.ndarray, *, lps: bool = True) -> sitk.Image:
    """``array`` ``(X, Y, Z)`` on the 4×4 voxel-to-world ``affine`` (RAS mm) as a SimpleITK image of size ``(X, Y, Z)``.

    Spacing (mm) is the affine's column norms, direction its columns over them; voxel values
    and dtype are kept. ``lps``: world coordinates in ITK's LPS frame (x and y flipped), as
    transforms and points leaving ITK expect; False keeps them RAS, enough when every image of
    one operation shares the frame.
    """
    linear = RAS_TO_LPS @ affine[:3, :3] if lps else affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((linear / spacing).ravel().tolist())
    image.SetOrigin((RAS_TO_LPS @ affine[:3, 3] if lps else affine[:3, 3]).tolist())
    return image


def mattes_registration(*, random: bool, fraction: float, seed: int, learning_rate: float, iterations: int,
                        relaxation: float, shrink: list[int], smoothing_mm: list[float]) -> sitk.ImageRegistrationMethod:
    """The registration of every wmhkit alignment (masks and initial transform are the caller's): Mattes mutual
    information (32 bins) on a ``fraction`` of the voxels drawn at ``random`` or on a regular grid (``seed``),
    linear interpolation, regular-step gradient descent (``learning_rate``, minimum step 1e-3, ``iterations`` per
    level, ``relaxation``) with scales from physical shifts, one level per ``shrink`` factor smoothed by
    ``smoothing_mm`` (mm)."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM if random else method.REGULAR)
    method.SetMetricSamplingPercentage(fraction, seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=learning_rate, minStep=1e-3, numberOfIterations=iterations, relaxationFactor=relaxation
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel(smoothing_mm)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method
