"""N4 bias-field correction (SimpleITK's ``N4BiasFieldCorrectionImageFilter``).

The field is estimated on a shrunk copy of the image (fast) inside a mask — the
given brain mask, or else a rough Otsu head mask — and the estimated log field is
then evaluated on the full-resolution grid and divided out, as in SimpleITK's N4
example. Iterations are fixed (no convergence-dependent early stop beyond ITK's
own threshold) and the filter runs single-threaded so results are reproducible
bit-for-bit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from wmhkit.io.image import Image
from wmhkit.io.sitk import to_sitk
from wmhkit.itk_threads import itk_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class N4Settings:
    """N4 parameters recorded in the prepare sidecar.

    Attributes
    ----------
    shrink_factor
        Shrink factor of a 1 mm grid; other spacings are shrunk to voxels of about
        ``shrink_factor`` mm (see :func:`shrink_factors`).
    iterations
        Maximum iterations per fitting level (one entry per level). The default
        (25, 25, 15) costs half of (50, 50, 30); on a raw clinical FLAIR the two
        fields differ by < 2.5 % (95th percentile 1.6 %) inside the head.
    convergence_threshold
        ITK's convergence threshold per level.
    control_points
        Number of B-spline control points per axis at the first level.
    """

    shrink_factor: int = 4
    iterations: tuple[int, ...] = (25, 25, 15)
    convergence_threshold: float = 1e-4
    control_points: int = 4

    def __post_init__(self) -> None:
        if self.shrink_factor < 1:
            raise ValueError(f"N4 shrink factor must be >= 1, got {self.shrink_factor}")
        if not self.iterations or any(i < 1 for i in self.iterations):
            raise ValueError(f"N4 iterations must be positive per level, got {self.iterations}")


def shrink_factors(spacing_mm: tuple[float, float, float], shape: tuple[int, int, int], factor: int) -> list[int]:
    """Per-axis shrink factors giving shrunk voxels of about ``factor`` mm.

    ``factor`` is the shrink factor of a 1 mm grid; finer axes are shrunk more and
    coarser ones less (never below 1), so the fit costs about the same at any
    resolution and a thick-slice axis is not shrunk at all. Every axis keeps at
    least 4 voxels.

    Examples
    --------
    >>> shrink_factors((0.72, 0.72, 4.0), (320, 320, 36), 4)
    [6, 6, 1]
    >>> shrink_factors((1.0, 1.0, 1.0), (182, 218, 182), 4)
    [4, 4, 4]
    """
    factors = []
    for spacing, size in zip(spacing_mm, shape):
        axis_factor = max(1, int(round(factor / spacing)))
        factors.append(min(axis_factor, max(1, size // 4)))
    return factors


def otsu_head_mask(flair: Image) -> np.ndarray:
    """A rough foreground (head) mask by Otsu's threshold, uint8 of shape ``(X, Y, Z)``.

    Only used to keep air out of the N4 fit; not a brain mask.
    """
    image = to_sitk(flair.array, _spacing_only(flair), lps=False)
    # Otsu labels voxels above the threshold with the "outside" value, hence (0, 1).
    mask = sitk.OtsuThreshold(image, 0, 1, 128)
    return np.ascontiguousarray(sitk.GetArrayFromImage(mask).T.astype(np.uint8))


def n4_bias_correct(flair: Image, *, mask: np.ndarray | None = None, settings: N4Settings = N4Settings()) -> Image:
    """Remove a smooth multiplicative bias field from ``flair``.

    Parameters
    ----------
    flair
        Intensity image, shape ``(X, Y, Z)``; intensities must be >= 0.
    mask
        Voxels used for the fit (non-zero), same shape; default a rough Otsu head mask.
        Voxels with intensity 0 are always left out (log of 0).
    settings
        Shrink factor and iteration schedule.

    Returns
    -------
    Image
        float32 corrected image on the same grid. Voxels outside the mask are
        corrected too (the field is smooth and defined everywhere).
    """
    intensities = np.asarray(flair.array, dtype=np.float32)
    fit_mask = otsu_head_mask(flair) if mask is None else (np.asarray(mask) > 0).astype(np.uint8)
    fit_mask = fit_mask & (intensities > 0).astype(np.uint8)
    if int(fit_mask.sum()) < 64:
        log.warning("N4 skipped: only %d voxels to fit the bias field on", int(fit_mask.sum()))
        return Image(intensities, flair.affine)
    if min(flair.shape) < 2:  # ITK's B-spline lattice would get a zero spacing ("Zero-valued spacing")
        log.warning("N4 skipped: a single slice (%s voxels) gives the bias field no extent across slices",
                    "×".join(map(str, flair.shape)))
        return Image(intensities, flair.affine)
    image = to_sitk(intensities, _spacing_only(flair), lps=False)
    mask_image = to_sitk(fit_mask, _spacing_only(flair), lps=False)
    factors = shrink_factors(flair.spacing_mm, flair.shape, settings.shrink_factor)
    small_image = sitk.Shrink(image, factors)
    small_mask = sitk.Shrink(mask_image, factors)

    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(list(settings.iterations))
    corrector.SetConvergenceThreshold(settings.convergence_threshold)
    corrector.SetNumberOfControlPoints([settings.control_points] * 3)
    # Multithreaded sums are not bit-reproducible, and N4's internal filters take ITK's
    # global default thread count rather than the corrector's own setting.
    with itk_threads(1):
        corrector.Execute(small_image, small_mask)
        log_field = corrector.GetLogBiasFieldAsImage(image)
    field = np.exp(sitk.GetArrayFromImage(log_field).T.astype(np.float64))
    corrected = (intensities / field).astype(np.float32)
    return Image(np.ascontiguousarray(corrected), flair.affine)


def _spacing_only(flair: Image) -> np.ndarray:
    """The affine N4 sees: ``flair``'s voxel spacing, identity direction, zero origin (the bias field
    is a smooth function of the voxel grid, and only the physical voxel size shapes it)."""
    return np.diag([*flair.spacing_mm, 1.0])
