"""The small frozen image type that travels between wmhkit's layers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from wmhkit.errors import GeometryError

#: Absolute tolerance (mm) when comparing two affines for "same grid".
AFFINE_ATOL_MM = 1e-4


@dataclass(frozen=True, eq=False)
class Image:
    """A 3D voxel array with the affine that maps voxel indices to world (RAS+) mm.

    Parameters
    ----------
    array
        Voxel data, shape ``(X, Y, Z)``, in the order stored on disk.
    affine
        4×4 voxel-to-world matrix in mm (NIfTI convention, RAS+ world).

    The spacing and voxel volume are always derived from the affine, never from
    header zooms, so that volumes agree with resampling.

    Examples
    --------
    >>> img = Image(np.zeros((10, 10, 10), np.uint8), np.diag([1.0, 1.0, 2.0, 1.0]))
    >>> img.spacing_mm
    (1.0, 1.0, 2.0)
    >>> img.voxel_volume_ml
    0.002
    """

    array: np.ndarray
    affine: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
        if np.asarray(self.array).ndim != 3:
            raise ValueError(f"Image array must be 3D, got shape {np.asarray(self.array).shape}")
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "array", np.asarray(self.array))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape ``(X, Y, Z)`` in voxels."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size along each array axis in mm (column norms of the affine)."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return tuple(round(float(n), 9) for n in norms)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (|det(affine)| mm³ / 1000)."""
        return round(abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0, 12)

    def with_array(self, array: np.ndarray) -> "Image":
        """Return a new image on the same grid holding ``array`` (same shape required)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from grid shape {self.array.shape}")
        return Image(array, self.affine)

    def same_grid(self, other: "Image", atol_mm: float = AFFINE_ATOL_MM) -> bool:
        """True when ``other`` has the same shape and (within ``atol_mm``) the same affine."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine, other.affine, atol=atol_mm, rtol=0)
        )


def check_same_grid(reference: Image, other: Image, path: str | os.PathLike[str]) -> None:
    """Raise unless ``other`` (read from ``path``) lies on ``reference``'s voxel grid.

    Masks and probability maps must share the FLAIR's grid exactly; a mismatch
    is never silently reshaped or resampled.

    Parameters
    ----------
    reference
        The image defining the grid (usually the FLAIR).
    other
        The image to check (mask, probability map, T1 already in FLAIR space).
    path
        File ``other`` came from, named in the error.

    Raises
    ------
    GeometryError
        Stating the two shapes, or the largest affine difference in mm.

    Examples
    --------
    >>> flair = Image(np.zeros((4, 4, 2), np.float32), np.eye(4))
    >>> check_same_grid(flair, Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), "wmh.nii.gz")
    >>> check_same_grid(flair, Image(np.zeros((4, 4, 3), np.uint8), np.eye(4)), "wmh.nii.gz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    wmhkit.errors.GeometryError: wmh.nii.gz: grid shape (4, 4, 3) differs from the reference image's (4, 4, 2)...
    """
    fix = "resample it onto the reference grid (nearest neighbour for labels) or check it belongs to this scan"
    if other.shape != reference.shape:
        raise GeometryError(path, f"grid shape {other.shape} differs from the reference image's {reference.shape}", fix)
    if not reference.same_grid(other):
        difference = float(np.max(np.abs(other.affine - reference.affine)))
        raise GeometryError(
            path, f"affine differs from the reference image's by up to {difference:.4g} mm", fix
        )
