"""Odd input: refusals (too small, single slice under N4) and flags (coarse voxels, a T1's contrast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.preprocess.checks import (
    T1_DEPTH_RATIO,
    check_flair,
    depth_ratio,
    voxel_flags,
)

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _brain(contrast: str, seed: int = 0) -> tuple[Image, np.ndarray]:
    """A 1 mm ellipsoid brain: sulcal CSF and cortex in a 12 mm shell (half the brain), white matter inside."""
    shape = (120, 140, 110)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radii = np.array(shape) / 2 - 4
    brain = (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(axis=0) <= 1
    depth = ndimage.distance_transform_edt(brain)
    csf, gm, wm = {"FLAIR": (0.2, 1.15, 1.0), "T1": (0.2, 0.65, 1.0)}[contrast]
    rng = np.random.default_rng(seed)
    image = np.where(depth > 12, wm, np.where(rng.random(shape) < 0.15, csf, gm))
    semi_axes = np.array([12, 20, 10])[:, None, None, None]
    ventricles = np.linalg.norm((grid - centre[:, None, None, None]) / semi_axes, axis=0) < 1
    image = np.where(ventricles, csf, image) * brain + rng.normal(0, 0.03, shape) * brain
    return Image(image.astype(np.float32), np.eye(4)), brain


@pytest.mark.parametrize(("contrast", "flagged"), [("FLAIR", False), ("T1", True)])
def test_depth_ratio_tells_a_t1_from_a_flair(contrast: str, flagged: bool) -> None:
    image, brain = _brain(contrast)
    ratio = depth_ratio(image, brain)
    assert ratio is not None and (ratio > T1_DEPTH_RATIO) is flagged


def test_a_flat_image_gives_no_verdict() -> None:
    image = Image(np.ones((20, 20, 20), np.float32), np.eye(4))
    assert depth_ratio(image, np.ones((20, 20, 20), bool)) is None


@pytest.mark.skipif(not (REAL / "lesjak2018").is_dir(), reason="../shared/data/real not found")
@pytest.mark.parametrize("patient", ["07", "26"])
def test_real_skull_stripped_flair_passes_and_its_t1_is_flagged(patient: str) -> None:
    from wmhkit.io.nifti import load_image

    folder = REAL / "lesjak2018" / "annotated" / f"patient{patient}"
    ratios = {name: depth_ratio(image, image.array > 0)
              for name in ("FLAIR", "T1") for image in [load_image(folder / f"{name}.nii.gz")]}
    assert ratios["FLAIR"] < T1_DEPTH_RATIO < ratios["T1"]


@pytest.mark.parametrize(("spacing", "flags"), [((0.9, 0.9, 5.0), []), ((1.0, 1.0, 1.0), []),
                                                 ((3.5, 3.5, 3.5), ["coarse_voxels"]),
                                                 ((10.0, 0.5, 0.5), []), ((0.5, 0.5, 10.5), ["coarse_voxels"])])
def test_voxel_limits(spacing: tuple[float, float, float], flags: list[str]) -> None:
    assert voxel_flags(spacing) == flags


def test_an_image_too_small_to_hold_a_brain_is_refused_unless_a_mask_comes_with_it() -> None:
    tiny = Image(np.ones((8, 8, 8), np.float32), np.eye(4))
    with pytest.raises(InputError, match=r"tiny.nii: image too small to hold a brain: 8×8×8 voxels of 1×1×1 mm"):
        check_flair(tiny, "tiny.nii", brain_mask_given=False)
    check_flair(tiny, "tiny.nii", brain_mask_given=True)  # RELIABILITY: tiny images with a mask run


def test_a_single_slice_is_refused_unless_a_mask_comes_with_it() -> None:
    one_slice = Image(np.ones((256, 256, 1), np.float32), np.diag([1.0, 1.0, 5.0, 1.0]))
    with pytest.raises(InputError, match=r"s.nii: image is a single slice or 2D \(256×256×1 voxels\)"):
        check_flair(one_slice, "s.nii", brain_mask_given=False)
    check_flair(one_slice, "s.nii", brain_mask_given=True)


def test_n4_skips_a_single_slice_instead_of_an_itk_error(caplog: pytest.LogCaptureFixture) -> None:
    from wmhkit.preprocess.bias import n4_bias_correct

    one_slice = Image(np.random.default_rng(0).uniform(50, 100, (64, 64, 1)).astype(np.float32), np.eye(4))
    corrected = n4_bias_correct(one_slice, mask=np.ones((64, 64, 1), np.uint8))
    assert np.array_equal(corrected.array, one_slice.array) and "N4 skipped: a single slice" in caplog.text


def test_the_contrast_is_judged_only_on_slices_thin_enough(caplog: pytest.LogCaptureFixture) -> None:
    from wmhkit.preprocess.checks import scan_flags

    image, brain = _brain("T1")
    mask = Image(brain.astype(np.uint8), image.affine)
    assert scan_flags("t1.nii.gz", (1.0, 1.0, 1.0), image, mask) == ["not_flair_contrast"]
    assert "t1.nii.gz: the contrast is a T1's, not a FLAIR's" in caplog.text
    assert scan_flags("thick.nii.gz", (1.0, 1.0, 5.0), image, mask) == []  # thick slices: no verdict
