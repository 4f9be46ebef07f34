"""Crop to the brain box, or pad to a fixed shape, with an exact inverse.

A :class:`VoxelBox` is a half-open index box ``[start, stop)`` on a grid. It may
reach outside the grid (negative ``start`` or ``stop`` beyond the shape): voxels
outside are filled with zeros. Cropping to a box inside the grid and padding to a
fixed shape are therefore the same operation, and its inverse (:func:`uncrop`)
zero-fills what the box left out, so any box round-trips exactly on the brain.
No interpolation is involved; the affine is shifted by the box origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wmhkit.errors import GeometryError, MaskError
from wmhkit.io.image import Image


@dataclass(frozen=True)
class VoxelBox:
    """Half-open voxel index box ``[start, stop)`` on a grid of shape ``grid_shape``.

    Attributes
    ----------
    start, stop
        Per-axis index bounds (voxels); may lie outside ``[0, grid_shape)``.
    grid_shape
        Shape ``(X, Y, Z)`` of the grid the box was defined on.
    """

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    grid_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        for name in ("start", "stop", "grid_shape"):
            object.__setattr__(self, name, _ints(getattr(self, name)))
        if any(b <= a for a, b in zip(self.start, self.stop)):
            raise ValueError(f"empty voxel box start={self.start} stop={self.stop}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the cropped array, ``stop - start`` per axis."""
        return tuple(int(b - a) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready form (see :meth:`from_dict`)."""
        return {"start": list(self.start), "stop": list(self.stop), "grid_shape": list(self.grid_shape)}

    @classmethod
    def from_dict(cls, record: dict[str, list[int]]) -> "VoxelBox":
        """Rebuild a box written by :meth:`to_dict`."""
        return cls(tuple(record["start"]), tuple(record["stop"]), tuple(record["grid_shape"]))  # type: ignore[arg-type]


def brain_box(brain_mask: Image, *, margin_mm: float = 10.0) -> VoxelBox:
    """Bounding box of the non-zero voxels of ``brain_mask`` plus ``margin_mm`` on each side.

    The margin is converted to voxels per axis from the affine's spacing (rounded
    up) and the box is clipped to the grid.

    Raises
    ------
    MaskError
        When the mask is empty.

    Examples
    --------
    >>> mask = np.zeros((10, 10, 4), np.uint8); mask[3:6, 4:7, 1:3] = 1
    >>> brain_box(Image(mask, np.diag([1.0, 1.0, 2.0, 1.0])), margin_mm=2.0)
    VoxelBox(start=(1, 2, 0), stop=(8, 9, 4), grid_shape=(10, 10, 4))
    """
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm}")
    inside = np.nonzero(brain_mask.array)
    if inside[0].size == 0:
        raise MaskError(None, "the brain mask is empty", "check the brain mask (or let wmhkit compute one)")
    margin = np.ceil(margin_mm / np.asarray(brain_mask.spacing_mm) - 1e-9).astype(int)
    start = [max(0, int(idx.min()) - m) for idx, m in zip(inside, margin)]
    stop = [min(s, int(idx.max()) + 1 + m) for idx, m, s in zip(inside, margin, brain_mask.shape)]
    return VoxelBox(tuple(start), tuple(stop), brain_mask.shape)  # type: ignore[arg-type]


def fixed_shape_box(box: VoxelBox, shape: tuple[int, int, int]) -> VoxelBox:
    """A box of exactly ``shape`` centred on ``box`` (it may reach outside the grid: zero padding).

    Raises
    ------
    GeometryError
        When ``box`` is larger than ``shape`` along an axis (the brain would be cut).
    """
    too_small = [i for i, (b, s) in enumerate(zip(box.shape, shape)) if b > s]
    if too_small:
        raise GeometryError(
            None,
            f"the brain box {box.shape} is larger than the fixed shape {tuple(shape)} along axis {too_small}",
            "use a larger fixed shape or no fixed shape",
        )
    start = [a - (s - b) // 2 for a, b, s in zip(box.start, box.shape, shape)]
    stop = [a + s for a, s in zip(start, shape)]
    return VoxelBox(tuple(start), tuple(stop), box.grid_shape)  # type: ignore[arg-type]


def crop(image: Image, box: VoxelBox) -> Image:
    """Cut ``box`` out of ``image`` (zero-filling where the box reaches outside the grid).

    Returns
    -------
    Image
        Array of shape ``box.shape``, same dtype; affine shifted to the box origin.
    """
    _check_grid(image.shape, box.grid_shape, "crop")
    out = np.zeros(box.shape, dtype=image.array.dtype)
    src, dst = _overlap(box)
    out[dst] = image.array[src]
    return Image(out, image.affine @ _translation(box.start))


def uncrop(image: Image, box: VoxelBox) -> Image:
    """Inverse of :func:`crop`: place ``image`` back on the full grid, zeros elsewhere.

    Returns
    -------
    Image
        Array of shape ``box.grid_shape``; affine shifted back by the box origin.
    """
    _check_grid(image.shape, box.shape, "uncrop")
    out = np.zeros(box.grid_shape, dtype=image.array.dtype)
    src, dst = _overlap(box)
    out[src] = image.array[dst]
    return Image(out, image.affine @ _translation([-a for a in box.start]))


def _overlap(box: VoxelBox) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices of the grid (``src``) and of the box array (``dst``) that overlap."""
    src, dst = [], []
    for a, b, n in zip(box.start, box.stop, box.grid_shape):
        lo, hi = max(a, 0), min(b, n)
        if hi <= lo:
            raise GeometryError(None, f"voxel box {box} does not overlap the grid", "recompute the box")
        src.append(slice(lo, hi))
        dst.append(slice(lo - a, hi - a))
    return tuple(src), tuple(dst)


def _translation(offset: list[int] | tuple[int, ...]) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = offset
    return shift


def _check_grid(shape: tuple[int, ...], expected: tuple[int, ...], what: str) -> None:
    if tuple(shape) != tuple(expected):
        raise GeometryError(None, f"cannot {what}: image shape {tuple(shape)} is not the box's {tuple(expected)}",
                            "pass the image the box was made for")


def _ints(values: Sequence[int]) -> tuple[int, int, int]:
    return tuple(int(v) for v in values)  # type: ignore[return-value]
