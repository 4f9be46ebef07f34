"""Registration with SimpleITK (mutual information): a T1 onto the FLAIR (rigid), a template onto a scan (affine).

``wmhkit prepare`` already resamples a T1 stored on another grid onto the FLAIR
grid through world coordinates, which is exact when both come from one scanner
session without motion. Between two acquisitions the head moves, so a T1 that
was *not* on the FLAIR's native grid is also rigidly registered to the FLAIR
before a T1 method uses it: Euler 3D transform, Mattes mutual information
(multi-modal), three resolution levels, seeded random sampling, one ITK thread (the metric's
multi-threaded sums would otherwise vary run to run: :mod:`wmhkit.itk_threads`), so deterministic.
:func:`affine_transform` brings the MNI template (and the ``lpa`` lesion prior in
its space) onto a scan: similarity then affine, inside both brain masks.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from wmhkit.io.image import Image
from wmhkit.io.sitk import mattes_registration, to_sitk
from wmhkit.itk_threads import itk_threads

#: Seed of the metric's random sampling (registration is deterministic given it).
SAMPLING_SEED = 20240
SAMPLING_FRACTION = 0.1
#: Gradient-descent iterations per resolution level: rigid, and each stage of the affine registration.
RIGID_ITERATIONS, AFFINE_ITERATIONS = 60, 40


def image_to_sitk(image: Image) -> sitk.Image:
    """A SimpleITK image with ``image``'s voxels (as float32) and world geometry (:func:`~wmhkit.io.sitk.to_sitk`)."""
    return to_sitk(np.asarray(image.array, np.float32), image.affine)


def rigid_transform(fixed: Image, moving: Image, fixed_mask: np.ndarray | None = None) -> sitk.Transform:
    """The rigid (Euler 3D) transform mapping ``fixed`` world points into ``moving`` (SimpleITK convention).

    Parameters
    ----------
    fixed, moving
        Intensity images (any grids in one world space).
    fixed_mask
        Optional mask on ``fixed``'s grid; the metric is evaluated inside it.

    Raises
    ------
    RuntimeError
        From SimpleITK when the optimisation cannot run (e.g. no overlap).
    """
    fixed_itk, moving_itk = image_to_sitk(fixed), image_to_sitk(moving)
    initial = sitk.CenteredTransformInitializer(
        fixed_itk, moving_itk, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    method = mattes_registration(random=True, fraction=SAMPLING_FRACTION, seed=SAMPLING_SEED, learning_rate=2.0,
                                 iterations=RIGID_ITERATIONS, relaxation=0.5, shrink=[4, 2, 1], smoothing_mm=[2.0, 1.0, 0.0])
    if fixed_mask is not None:
        method.SetMetricFixedMask(image_to_sitk(fixed.with_array(np.asarray(fixed_mask).astype(np.uint8))) > 0)
    method.SetInitialTransform(initial, inPlace=False)
    with itk_threads(1):
        return method.Execute(fixed_itk, moving_itk)


def affine_transform(fixed: Image, moving: Image, fixed_mask: np.ndarray, moving_mask: np.ndarray) -> sitk.Transform:
    """The affine transform mapping ``fixed`` world points into ``moving`` (e.g. a scan into a template).

    Brains differ in size and shape between people, so a template is brought to a
    scan by a similarity (rotation, translation, one scale) then an affine transform,
    both by Mattes mutual information (contrast-agnostic: a T1 template to a FLAIR)
    inside the two brain masks, initialised by matching the masks' centres of mass,
    two resolution levels (shrink 4 and 2, smoothing 2 and 1 mm, :data:`AFFINE_ITERATIONS` each),
    seeded random sampling, one ITK thread (deterministic). Raises as :func:`rigid_transform`.

    Parameters
    ----------
    fixed, moving
        Intensity images (skull stripped or masked), any grids and spacings.
    fixed_mask, moving_mask
        Brain masks on the two images' grids.
    """
    fixed_itk, moving_itk = image_to_sitk(fixed), image_to_sitk(moving)
    fixed_brain = image_to_sitk(fixed.with_array(np.asarray(fixed_mask).astype(np.uint8))) > 0
    moving_brain = image_to_sitk(moving.with_array(np.asarray(moving_mask).astype(np.uint8))) > 0
    similarity = sitk.CenteredTransformInitializer(
        sitk.Cast(fixed_brain, sitk.sitkFloat32), sitk.Cast(moving_brain, sitk.sitkFloat32),
        sitk.Similarity3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS,
    )
    similarity = sitk.Similarity3DTransform(similarity)
    _optimise(similarity, fixed_itk, moving_itk, fixed_brain, moving_brain)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(similarity.GetMatrix())
    affine.SetTranslation(similarity.GetTranslation())
    affine.SetCenter(similarity.GetCenter())
    _optimise(affine, fixed_itk, moving_itk, fixed_brain, moving_brain)
    return affine


def _optimise(transform: sitk.Transform, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image,
              moving_mask: sitk.Image) -> None:
    """Optimise ``transform`` in place: masked Mattes MI, two levels (see :func:`affine_transform`)."""
    method = mattes_registration(random=True, fraction=SAMPLING_FRACTION, seed=SAMPLING_SEED, learning_rate=1.0,
                                 iterations=AFFINE_ITERATIONS, relaxation=0.5, shrink=[4, 2], smoothing_mm=[2.0, 1.0])
    method.SetMetricFixedMask(fixed_mask)
    method.SetMetricMovingMask(moving_mask)
    method.SetInitialTransform(transform, inPlace=True)
    with itk_threads(1):  # bit-reproducible, as rigid_transform
        method.Execute(fixed, moving)


def resample_onto(image: Image, reference: Image, transform: sitk.Transform | None = None, *, labels: bool = False) -> Image:
    """``image`` on ``reference``'s grid through ``transform`` (identity when None).

    Linear interpolation (float32) for intensities; nearest neighbour (uint8) for labels.
    """
    resampled = sitk.Resample(
        image_to_sitk(image), image_to_sitk(reference.with_array(np.zeros(reference.shape, np.float32))),
        transform or sitk.Transform(), sitk.sitkNearestNeighbor if labels else sitk.sitkLinear, 0.0, sitk.sitkFloat32,
    )
    array = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)
    return Image((array > 0.5).astype(np.uint8) if labels else array.astype(np.float32), reference.affine)


def register_rigid(moving: Image, fixed: Image, fixed_mask: np.ndarray | None = None) -> Image:
    """Rigidly register ``moving`` (e.g. a T1) to ``fixed`` (the FLAIR) and resample it onto ``fixed``'s grid.

    Returns
    -------
    Image
        float32 ``moving`` on ``fixed``'s grid and affine (linear interpolation, 0 outside).
    """
    return resample_onto(moving, fixed, rigid_transform(fixed, moving, fixed_mask))
