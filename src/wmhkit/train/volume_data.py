"""Augmentation of GP-Unet training boxes (the box itself: :mod:`wmhkit.models.box`).

:func:`augment_box`: a random translation of up to ``translation`` × each box size,
a rotation about the slice axis of up to ``rotation_deg``, and a left-right flip,
applied in one trilinear resampling (zero outside), with every random number drawn
from the generator passed in (see :func:`wmhkit.train.reproducibility.epoch_generator`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Augmentation:
    """On-the-fly augmentation settings (see :func:`augment_box`).

    Attributes
    ----------
    translation
        Largest shift as a fraction of each box size (the paper: 0.2).
    rotation_deg
        Largest rotation about the slice (third) axis, degrees.
    flip
        Mirror left-right (first axis) with probability 1/2.
    """

    translation: float = 0.2
    rotation_deg: float = 10.0
    flip: bool = True

    @property
    def active(self) -> bool:
        """True when any augmentation is on."""
        return self.translation > 0 or self.rotation_deg > 0 or self.flip


def augment_box(
    flair: np.ndarray, target: np.ndarray | None, rng: np.random.Generator, settings: Augmentation
) -> tuple[np.ndarray, np.ndarray | None]:
    """Randomly shift, rotate and flip a box image (and its voxel target alike).

    Parameters
    ----------
    flair
        Box image ``(X, Y, Z)``.
    target
        Voxel target of the same shape (soft lesion fraction), or None.
    rng
        Source of every random number (drawn in a fixed order: flip, angle, shift).
    settings
        Ranges.

    Returns
    -------
    tuple
        The augmented image and target (float32), zero where the moved image leaves the box.
    """
    shape = np.asarray(flair.shape, dtype=np.float64)
    flip = bool(rng.random() < 0.5) and settings.flip
    angle = np.deg2rad(rng.uniform(-settings.rotation_deg, settings.rotation_deg))
    shift = rng.uniform(-settings.translation, settings.translation, size=3) * shape
    # output voxel o samples input voxel R (o - c) + c - shift, optionally mirrored along x
    rotation = np.eye(3)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    if flip:
        rotation = rotation @ np.diag([-1.0, 1.0, 1.0])
    centre = (shape - 1) / 2.0
    offset = centre - rotation @ centre - shift

    def move(array: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(array.astype(np.float32), rotation, offset=offset, order=1,
                                        mode="constant", cval=0.0).astype(np.float32)

    return move(flair), None if target is None else move(target)
