"""Brain extraction on small analytic head phantoms, skull-stripped input, bad input and real scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wmhkit.errors import MaskError
from wmhkit.io.image import Image
from wmhkit.preprocess.brain_mask import compute_brain_mask

SPACING_MM = 2.5
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "lesjak2018" / "unannotated"
RAW_FLAIR = REAL / "patient04-study1" / "FLAIR.nii.gz"


def _ellipsoid_distance(shape, centre_vox, semi_axes_mm) -> np.ndarray:
    """Normalised ellipsoid radius (1 on the surface) at every voxel of the isotropic phantom grid."""
    grids = np.indices(shape, dtype=np.float32)
    return np.sqrt(sum(((g - c) * SPACING_MM / a) ** 2 for g, c, a in zip(grids, centre_vox, semi_axes_mm)))


def _head_phantom(with_head: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(flair, true brain) arrays at 2.5 mm: ellipsoid brain (GM rim, WM, dark ventricles)
    inside a dark CSF/skull gap and a bright scalp shell, with Gaussian noise."""
    shape = (76, 88, 76)
    centre = (38.0, 44.0, 36.0)
    brain_axes = np.array([68.0, 84.0, 58.0])
    radius = _ellipsoid_distance(shape, centre, brain_axes)
    brain = radius <= 1.0
    flair = np.zeros(shape, np.float32)
    flair[brain] = 0.75  # grey matter
    flair[radius <= 0.85] = 0.6  # white matter
    for side in (-1, 1):
        ventricle = _ellipsoid_distance(shape, (centre[0] + side * 4, centre[1], centre[2] + 2), (6.0, 25.0, 9.0))
        flair[ventricle <= 1.0] = 0.1
    if with_head:
        head_radius = _ellipsoid_distance(shape, centre, brain_axes + 14.0)
        skull_radius = _ellipsoid_distance(shape, centre, brain_axes + 7.0)
        flair[(head_radius <= 1.0) & (skull_radius > 1.0)] = 0.9  # scalp
        flair[(skull_radius <= 1.0) & ~brain] = 0.08  # CSF and skull
    noise = np.random.default_rng(seed).normal(0.0, 0.03, shape).astype(np.float32)
    flair = np.where(flair > 0, flair + noise, np.abs(noise) * 0.3)
    return (flair * 1000).astype(np.float32), brain


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _lps_oblique_affine(angle_deg: float) -> np.ndarray:
    """LPS storage (x→left, y→posterior) rotated ``angle_deg`` about the superior axis, 2.5 mm voxels."""
    t = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-SPACING_MM, -SPACING_MM, SPACING_MM])
    affine[:3, 3] = [95.0, 110.0, -90.0]
    return affine


def test_head_phantom_mask_matches_the_true_brain():
    flair, brain = _head_phantom()
    image = Image(flair, np.diag([SPACING_MM] * 3 + [1.0]))
    mask = compute_brain_mask(image)
    assert mask.array.dtype == np.uint8
    assert set(np.unique(mask.array)) <= {0, 1}
    assert _dice(mask.array, brain) >= 0.9
    scalp = flair > 850
    assert (mask.array.astype(bool) & scalp).sum() < 0.02 * scalp.sum()


def test_lps_oblique_input_gives_a_mask_on_the_exact_input_grid():
    flair, brain = _head_phantom(seed=1)
    affine = _lps_oblique_affine(15.0)
    image = Image(flair, affine)
    mask = compute_brain_mask(image)
    assert mask.shape == image.shape
    np.testing.assert_array_equal(mask.affine, affine)
    assert _dice(mask.array, brain) >= 0.9


def test_repeated_runs_give_identical_masks():
    flair, _ = _head_phantom(seed=2)
    image = Image(flair, np.diag([SPACING_MM] * 3 + [1.0]))
    np.testing.assert_array_equal(compute_brain_mask(image).array, compute_brain_mask(image).array)


def test_skull_stripped_input_keeps_the_brain():
    flair, brain = _head_phantom(with_head=False)
    flair[~brain] = 0.0
    mask = compute_brain_mask(Image(flair, _lps_oblique_affine(-10.0)))
    nonzero = flair > 0
    kept = float((mask.array.astype(bool) & nonzero).sum()) / float(nonzero.sum())
    assert kept >= 0.95
    assert _dice(mask.array, brain) >= 0.95


def test_blank_image_raises_mask_error_naming_the_fix():
    with pytest.raises(MaskError, match="brain_mask"):
        compute_brain_mask(Image(np.zeros((20, 20, 20), np.float32), np.eye(4)))


def test_implausibly_small_object_raises_mask_error():
    flair = np.zeros((40, 40, 40), np.float32)
    flair[15:25, 15:25, 15:25] = 500.0  # a 1 mL cube at 1 mm: no brain
    with pytest.raises(MaskError, match="plausible"):
        compute_brain_mask(Image(flair, np.eye(4)))


@pytest.mark.realdata
@pytest.mark.skipif(not RAW_FLAIR.is_file(), reason="../shared/data/real not found")
def test_raw_clinical_flair_gives_a_plausible_brain_volume():
    from wmhkit.io.nifti import load_image

    flair = load_image(RAW_FLAIR)
    mask = compute_brain_mask(flair)
    volume_ml = float(mask.array.sum()) * flair.voxel_volume_ml
    assert mask.same_grid(flair)
    assert 800.0 <= volume_ml <= 2000.0
