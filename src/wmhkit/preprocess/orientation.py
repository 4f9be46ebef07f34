"""Reorientation to the closest canonical (RAS+) voxel order, and back.

Only axis permutations and flips are used (nibabel's ``io_orientation`` /
``apply_orientation``), never interpolation, so the inverse is exact: every voxel
value comes back bit-for-bit and labels stay labels. An oblique scan stays oblique
(its affine keeps the rotation); only its storage order becomes "closest to RAS".
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

from wmhkit.io.image import Image

#: Orientation of an array already in RAS+ order (axis i → world axis i, no flip).
RAS_ORNT = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


def canonical_ornt(affine: np.ndarray) -> np.ndarray:
    """The (3, 2) nibabel orientation that takes an array stored with ``affine`` to RAS+ order.

    Rows are ``(target axis, flip)`` for each stored axis, as from
    :func:`nibabel.orientations.io_orientation`.
    """
    return nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))


def reorient(image: Image, ornt: np.ndarray) -> Image:
    """Permute/flip ``image`` by the nibabel orientation ``ornt``, keeping world positions.

    Parameters
    ----------
    image
        Image of shape ``(X, Y, Z)``.
    ornt
        (3, 2) array of ``(new axis, flip ±1)`` per current axis.

    Returns
    -------
    Image
        Same voxels in the new storage order; the affine is updated so that every
        voxel keeps its world coordinate. The array is a contiguous copy.
    """
    ornt = np.asarray(ornt, dtype=np.float64)
    array = np.ascontiguousarray(nib.orientations.apply_orientation(image.array, ornt))
    affine = image.affine @ nib.orientations.inv_ornt_aff(ornt, image.shape)
    return Image(array, affine)


def to_canonical(image: Image) -> tuple[Image, np.ndarray]:
    """Reorient ``image`` to the closest RAS+ storage order.

    Returns
    -------
    canonical : Image
        The reoriented image (shape is a permutation of ``image.shape``).
    ornt : numpy.ndarray
        (3, 2) orientation applied; pass it to :func:`from_canonical` to undo.

    Examples
    --------
    >>> lps = Image(np.arange(24.0).reshape(2, 3, 4), np.diag([-1.0, -1.0, 1.0, 1.0]))
    >>> ras, ornt = to_canonical(lps)
    >>> nib.aff2axcodes(ras.affine)
    ('R', 'A', 'S')
    >>> bool(np.array_equal(from_canonical(ras, ornt).array, lps.array))
    True
    """
    ornt = canonical_ornt(image.affine)
    return reorient(image, ornt), ornt


def from_canonical(image: Image, ornt: np.ndarray) -> Image:
    """Undo :func:`to_canonical`: put a canonical-order image back in native storage order.

    Parameters
    ----------
    image
        Image in canonical order (shape = the canonical shape).
    ornt
        The (3, 2) orientation :func:`to_canonical` returned for the native image.

    Returns
    -------
    Image
        Native storage order. The affine is recomputed from ``image.affine``; callers
        that need the bit-exact native affine take it from the stored native record.
    """
    inverse = nib.orientations.ornt_transform(RAS_ORNT, np.asarray(ornt, dtype=np.float64))
    return reorient(image, inverse)
