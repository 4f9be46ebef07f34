"""Odd input: refusals (too small, single slice under N4) and flags (coarse voxels, T1-like contrast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wmhkit.errors import InputError
from wmhkit.io.image import Image
from wmhkit.preprocess.checks import check_flair, scan_flags, voxel_flags


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


def test_coarse_voxels_are_flagged_with_a_warning_naming_the_file(caplog: pytest.LogCaptureFixture) -> None:
    assert scan_flags("coarse.nii.gz", (5.0, 5.0, 5.0)) == ["coarse_voxels"]
    assert "coarse.nii.gz: voxels of 5×5×5 mm are coarser than WMH models resolve" in caplog.text
    assert scan_flags("fine.nii.gz", (0.9, 0.9, 6.5)) == []


def test_a_t1_has_a_darker_cortex_than_deep_tissue_and_a_flair_a_brighter_one(tmp_path: Path) -> None:
    from wmhkit.io.nifti import load_image, load_mask
    from wmhkit.preprocess.checks import T1_LIKE_RATIO, cortex_to_deep_ratio
    from wmhkit.synth.cohort import synthesize_subject

    ratios = {}
    for index, scanner in ((1, "A"), (2, "B")):
        row = synthesize_subject(tmp_path, index, seed=3, scanner=scanner, resolution_mm=2.0, with_brain_mask=True)
        brain = load_mask(tmp_path / row["brain_mask"])
        for role in ("flair", "t1"):
            ratios[scanner, role] = cortex_to_deep_ratio(load_image(tmp_path / row[role]), brain)
    assert all(ratios[scanner, "flair"] > T1_LIKE_RATIO > ratios[scanner, "t1"] for scanner in "AB"), ratios
    tiny = load_image(tmp_path / row["flair"])
    assert np.isnan(cortex_to_deep_ratio(tiny, tiny.with_array(np.zeros(tiny.shape, np.uint8))))
