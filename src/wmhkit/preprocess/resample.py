"""Resampling an intensity image onto another image's grid through world coordinates.

Used to bring a T1 acquired on its own grid onto the FLAIR grid (same scanner
session, so the two share world coordinates). Labels are never resampled here:
a label image on the wrong grid is an error (:class:`~wmhkit.errors.GeometryError`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wmhkit.io.image import Image


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
