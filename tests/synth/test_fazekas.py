"""The documented Fazekas rule on analytic masks."""

import numpy as np

from wmhkit.io.image import Image
from wmhkit.synth.fazekas import fazekas_grades

SHAPE = (60, 60, 60)


def _distance_from_plane(z0: int) -> np.ndarray:
    """Ventricle = the half-space z < z0; distance (mm at 1 mm voxels) to it."""
    z = np.arange(SHAPE[2], dtype=np.float32)
    return np.broadcast_to(np.clip(z - z0 + 1, 0, None), SHAPE).copy()


def _grade(mask: np.ndarray, distance: np.ndarray):
    return fazekas_grades(Image(mask.astype(np.uint8), np.eye(4)), distance)


def test_no_lesion_is_grade_zero():
    grades = _grade(np.zeros(SHAPE), _distance_from_plane(10))
    assert (grades.periventricular, grades.deep, grades.overall) == (0, 0, 0)


def test_periventricular_reach_sets_pv_grade():
    distance = _distance_from_plane(10)
    for thickness, expected in ((3, 1), (8, 2), (16, 3)):
        mask = np.zeros(SHAPE)
        mask[20:40, 20:40, 10:10 + thickness] = 1
        assert _grade(mask, distance).periventricular == expected, thickness


def test_deep_lesion_size_sets_deep_grade():
    distance = np.full(SHAPE, 20.0, dtype=np.float32)  # every voxel 20 mm from the ventricles
    grid = np.indices(SHAPE) - 30
    radius = np.sqrt((grid**2).sum(axis=0))
    for sphere_radius, expected in ((3, 1), (7, 2), (12, 3)):  # diameters 6, 14, 24 mm
        grades = _grade(radius <= sphere_radius, distance)
        assert (grades.periventricular, grades.deep) == (0, expected), sphere_radius


def test_overall_is_the_larger_grade():
    distance = _distance_from_plane(10)
    mask = np.zeros(SHAPE)
    mask[20:40, 20:40, 10:13] = 1  # PV 1
    grid = np.indices(SHAPE) - np.array([30, 30, 45])[:, None, None, None]
    mask[np.sqrt((grid**2).sum(axis=0)) <= 7] = 1  # deep 2
    grades = _grade(mask, distance)
    assert (grades.periventricular, grades.deep, grades.overall) == (1, 2, 2)
