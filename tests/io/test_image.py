"""The frozen image type: spacing and volume from the affine, grid comparison."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.errors import GeometryError
from wmhkit.io.image import Image, check_same_grid


def _oblique(spacing=(0.9, 0.9, 3.0), degrees=20.0, flip_x=True) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing) @ np.diag([-1.0 if flip_x else 1.0, 1.0, 1.0])
    affine[:3, 3] = [12.0, -40.0, 8.5]
    return affine


def test_spacing_and_voxel_volume_come_from_the_affine_of_an_oblique_flipped_grid():
    image = Image(np.zeros((4, 5, 6), np.float32), _oblique())
    assert image.spacing_mm == (0.9, 0.9, 3.0)
    assert image.voxel_volume_ml == pytest.approx(0.9 * 0.9 * 3.0 / 1000, rel=1e-12)
    assert image.shape == (4, 5, 6)


def test_volume_of_a_10mm_cube_is_one_ml():
    image = Image(np.ones((10, 10, 10), np.uint8), np.eye(4))
    assert float(image.array.sum()) * image.voxel_volume_ml == pytest.approx(1.0)


def test_constructor_rejects_non_3d_arrays_and_bad_affines():
    with pytest.raises(ValueError, match="3D"):
        Image(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        Image(np.zeros((4, 4, 4)), np.eye(3))


def test_with_array_keeps_the_grid_and_checks_the_shape():
    image = Image(np.zeros((2, 3, 4), np.float32), _oblique())
    mask = image.with_array(np.ones((2, 3, 4), np.uint8))
    np.testing.assert_array_equal(mask.affine, image.affine)
    assert mask.array.dtype == np.uint8
    with pytest.raises(ValueError, match="differs from grid shape"):
        image.with_array(np.ones((2, 3, 5)))


def test_same_grid_tolerates_float32_storage_but_not_a_shift():
    affine = _oblique()
    image = Image(np.zeros((2, 3, 4)), affine)
    assert image.same_grid(Image(np.zeros((2, 3, 4)), affine.astype(np.float32)))
    shifted = affine.copy()
    shifted[2, 3] += 0.01
    assert not image.same_grid(Image(np.zeros((2, 3, 4)), shifted))
    assert not image.same_grid(Image(np.zeros((2, 3, 5)), affine))


def test_check_same_grid_names_the_file_and_the_difference():
    flair = Image(np.zeros((2, 3, 4)), np.eye(4))
    check_same_grid(flair, Image(np.zeros((2, 3, 4), np.uint8), np.eye(4)), "wmh.nii.gz")
    with pytest.raises(GeometryError, match=r"^wmh\.nii\.gz: grid shape \(3, 2, 4\) differs"):
        check_same_grid(flair, Image(np.zeros((3, 2, 4), np.uint8), np.eye(4)), "wmh.nii.gz")
    with pytest.raises(GeometryError, match=r"^brain\.nii\.gz: affine differs .* up to 2 mm"):
        check_same_grid(flair, Image(np.zeros((2, 3, 4), np.uint8), np.diag([1.0, 1.0, 3.0, 1.0])), "brain.nii.gz")
