"""Volumetry: volumes from the affine, periventricular/deep split, lesion count, ventricles."""

from __future__ import annotations

import numpy as np
import pytest

from wmhkit.infer.volumes import count_lesions, distance_to_mask_mm, estimate_ventricles, wmh_volumes
from wmhkit.io.image import Image

AFFINE = np.diag([2.0, 1.0, 3.0, 1.0])  # 6 mm³ = 0.006 mL voxels


def _image(array: np.ndarray, affine: np.ndarray = AFFINE) -> Image:
    return Image(array.astype(np.uint8), affine)


def test_volumes_come_from_the_affine_and_split_by_distance_to_the_ventricles() -> None:
    shape = (20, 40, 10)
    brain = _image(np.ones(shape))
    ventricles = np.zeros(shape, np.uint8)
    ventricles[:, :5, :] = 1  # the ventricle face is at y = 4 (1 mm voxels along y)
    wmh = np.zeros(shape, np.uint8)
    wmh[3, 4 + 10, 5] = 1  # exactly 10 mm away: periventricular
    wmh[3, 4 + 11, 5] = 1  # 11 mm: deep, and touching the first voxel (one lesion)
    wmh[10, 30, 2] = wmh[11, 31, 3] = 1  # 26 mm: deep; diagonal neighbours, one lesion
    volumes = wmh_volumes(_image(wmh), brain, _image(ventricles), pv_distance_mm=10.0)
    assert volumes.wmh_ml == pytest.approx(4 * 0.006)
    assert volumes.periventricular_ml == pytest.approx(0.006)
    assert volumes.deep_ml == pytest.approx(3 * 0.006)
    assert volumes.icv_ml == pytest.approx(20 * 40 * 10 * 0.006)
    assert volumes.wmh_pct_icv == pytest.approx(100 * 4 / 8000)
    assert volumes.ventricle_ml == pytest.approx(20 * 5 * 10 * 0.006)
    assert volumes.lesion_count == 2
    wider = wmh_volumes(_image(wmh), brain, _image(ventricles), pv_distance_mm=11.0)
    assert wider.periventricular_ml == pytest.approx(2 * 0.006)


def test_distance_uses_anisotropic_spacing() -> None:
    mask = np.zeros((5, 5, 5), np.uint8)
    mask[0, 0, 0] = 1
    distance = distance_to_mask_mm(_image(mask))
    assert distance[1, 0, 0] == pytest.approx(2.0)
    assert distance[0, 0, 1] == pytest.approx(3.0)
    assert distance[1, 1, 1] == pytest.approx(np.sqrt(4 + 1 + 9))


def test_empty_prediction_gives_zero_not_nan() -> None:
    shape = (6, 6, 6)
    volumes = wmh_volumes(_image(np.zeros(shape)), _image(np.ones(shape)), _image(np.pad(np.ones((2, 2, 2)), 2)))
    assert volumes.wmh_ml == 0.0 and volumes.wmh_pct_icv == 0.0
    assert volumes.periventricular_ml == 0.0 and volumes.deep_ml == 0.0 and volumes.lesion_count == 0


def test_no_ventricles_leaves_the_split_undefined() -> None:
    shape = (6, 6, 6)
    wmh = np.zeros(shape)
    wmh[2, 2, 2] = 1
    volumes = wmh_volumes(_image(wmh), _image(np.ones(shape)), _image(np.zeros(shape)))
    assert volumes.periventricular_ml is None and volumes.deep_ml is None
    assert volumes.wmh_ml == pytest.approx(0.006)


def test_grid_mismatch_and_empty_brain_are_errors() -> None:
    with pytest.raises(ValueError, match="differ"):
        wmh_volumes(_image(np.zeros((4, 4, 4))), _image(np.ones((4, 4, 5))), _image(np.zeros((4, 4, 4))))
    with pytest.raises(ValueError, match="brain mask is empty"):
        wmh_volumes(_image(np.zeros((4, 4, 4))), _image(np.zeros((4, 4, 4))), _image(np.zeros((4, 4, 4))))


def test_lesion_count_uses_26_connectivity() -> None:
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1, 1, 1] = mask[2, 2, 2] = 1  # corner neighbours: one lesion
    mask[4, 4, 4] = 1
    assert count_lesions(mask) == 2


def test_ventricles_are_enclosed_dark_components_of_sufficient_size() -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 0.008 mL voxels
    shape = (30, 30, 30)
    brain = np.zeros(shape, bool)
    brain[3:27, 3:27, 3:27] = True
    flair = np.where(brain, 500.0, 0.0)
    flair[10:18, 10:18, 10:14] = 50.0  # enclosed, 256 voxels = 2.05 mL: ventricle
    flair[20:22, 20:22, 20:22] = 50.0  # enclosed, 8 voxels = 0.064 mL: too small
    flair[3:8, 12:20, 12:20] = 50.0  # dark but open to the outside (sulcal CSF)
    ventricles = estimate_ventricles(Image(flair.astype(np.float32), affine), _image(brain, affine))
    expected = np.zeros(shape, np.uint8)
    expected[10:18, 10:18, 10:14] = 1
    assert ventricles.array.dtype == np.uint8
    np.testing.assert_array_equal(ventricles.array, expected)


def test_ventricles_left_as_holes_in_the_brain_mask_are_found() -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    brain = np.zeros((30, 30, 30), bool)
    brain[3:27, 3:27, 3:27] = True
    brain[10:18, 10:18, 10:14] = False  # a skull-stripping tool that removed the CSF
    flair = np.where(brain, 500.0, 0.0).astype(np.float32)
    ventricles = estimate_ventricles(Image(flair, affine), _image(brain, affine))
    assert int(ventricles.array.sum()) == 8 * 8 * 4


def test_thick_slice_ventricles_joined_to_the_outside_by_dark_csf_are_found(caplog: pytest.LogCaptureFixture) -> None:
    """2D FLAIR, 1×1×5 mm: partial volume darkens a CSF path from the ventricles to the brain surface."""
    affine = np.diag([1.0, 1.0, 5.0, 1.0])
    shape = (120, 140, 26)
    grid = np.indices(shape).astype(float) * np.array([1.0, 1.0, 5.0])[:, None, None, None]
    centre = (np.array(shape) - 1) * np.array([1.0, 1.0, 5.0]) / 2
    brain = (((grid - centre[:, None, None, None]) / np.array([55, 65, 55])[:, None, None, None]) ** 2).sum(0) <= 1
    flair = np.where(brain, 500.0, 0.0)
    ventricle = np.zeros(shape, bool)
    ventricle[50:70, 55:85, 11:15] = True  # 20 × 30 × 20 mm = 12 mL
    flair[ventricle] = 60.0
    flair[58:62, 85:140, 12:14] = 60.0  # dark CSF from the ventricle out through the brain surface
    with caplog.at_level("INFO", logger="wmhkit.infer.volumes"):
        found = estimate_ventricles(Image(flair.astype(np.float32), affine), _image(brain, affine)).array.astype(bool)
    assert found[ventricle].mean() > 0.9 and not found[58:62, 130:140, 12:14].any()
    assert "the dark CSF reaches the outside of the brain" in caplog.text
    empty = estimate_ventricles(Image(np.where(brain, 500.0, 0.0).astype(np.float32), affine), _image(brain, affine))
    assert not empty.array.any() and "lies deeper than 10 mm inside it" in caplog.text
